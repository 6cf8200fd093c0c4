"""The plain-text renderer and the error line (mlship/console.py) under hostile
environments and cell contents.

Found: COLUMNS=0 printed nothing at all (exit 0: a CI log with no result); an output
encoding that cannot show ✓ or … (PYTHONIOENCODING=latin-1, an old LANG) crashed with
UnicodeEncodeError midway through the report (exit 1); a newline in a path made the
error two lines; a tab in a cell broke the plain table's columns; a multi-line value of a
column moved under its row started its second line at column 0, like a new row.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.table import Table
from rich.text import Text

from mlship.console import Console
from tests.support import MODEL, SAMPLE, run, run_process

CHECK = ("check", str(MODEL), "--sample", str(SAMPLE))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """check's plain output with a sane COLUMNS (the lines every other width must also print)."""
    result = run_process("--plain", *CHECK, env={"COLUMNS": "100"}, cwd=tmp_path_factory.mktemp("ref"))
    assert result.code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("columns", ["0", "-5", "abc", "", "1e3", "99999999999999999999"])
def test_a_bad_columns_value_still_prints_the_whole_report(tmp_path, reference, columns):
    result = run_process("--plain", *CHECK, env={"COLUMNS": columns}, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip().endswith("PASSED")
    assert "smoke run: 171 rows from" in result.stdout and "Signature" in result.stdout
    assert len(result.stdout.splitlines()) >= len(reference.splitlines()) - 2


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_an_encoding_without_the_report_characters_does_not_crash(tmp_path, encoding):
    result = run_process(*CHECK, env={"PYTHONIOENCODING": encoding}, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "UnicodeEncodeError" not in result.stderr
    assert result.stdout.rstrip().endswith("PASSED") and "\\u2713 smoke run" in result.stdout


def test_an_error_naming_a_hostile_path_in_latin1_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    proc = subprocess.run([sys.executable, "-m", "mlship", "check", "mödel\u2713.onnx"], capture_output=True,
                          env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=120)
    stderr = proc.stderr.decode("latin-1")
    assert proc.returncode == 3 and stderr.count("\n") == 1, stderr
    assert "m\xf6del\\u2713.onnx" in stderr


@pytest.mark.parametrize("args,code", [(("check", "a\nb.onnx"), 3), (("check", str(MODEL), "--sample", "s\r\nx.csv"), 3),
                                       (("predict", str(MODEL), "--input", "i\n.csv", "--output", "o.csv"), 3)])
def test_line_breaks_in_an_error_are_shown_not_obeyed(tmp_path, monkeypatch, args, code):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.code == code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "\\n" in result.stderr
    doc = run("--json", *args)
    assert doc.json()["error"]["exit_code"] == code  # the JSON document keeps the text as it was


def _plain(table: Table, columns: int = 40) -> list[str]:
    out = io.StringIO()
    console = Console(stdout=out, plain_output=True)
    console.out.width = columns
    console.result({}, lambda rich: rich.print(table))
    return out.getvalue().splitlines()


def test_tabs_escapes_and_newlines_in_cells_keep_the_table_aligned():
    table = Table("name", "value", "note")
    table.add_row(Text("a\tb"), Text("x" * 60 + "\nsecond"), Text("line1\nline2"))
    table.add_row(Text("c\x1b[31mred"), Text("1"), Text("ok"))
    lines = _plain(table)
    assert lines[0].split() == ["name", "note"]
    note_at = lines[0].index("note")
    assert lines[1] == "a\\tb".ljust(note_at) + "line1"  # a tab would widen past the column
    assert lines[2] == " " * note_at + "line2"
    assert lines[3] == "    value: " + "x" * 60
    assert lines[4] == "      second"  # under its row, not at column 0 like a new row
    assert lines[5] == "c\\x1b[31mred".ljust(note_at) + "ok"
    assert "\x1b" not in "\n".join(lines) and "\t" not in "\n".join(lines)


def test_a_very_long_token_prints_whole_under_its_row():
    token = "t" * 5000
    table = Table("id", "token")
    table.add_row(Text("1"), Text(token))
    lines = _plain(table, columns=20)
    assert lines == ["id", "1", f"    token: {token}"]
