"""CLI output: strings from models, files and users are printed as they are,
never read as rich markup (issue 15, item 7).

Each test drives the real CLI (in process, output captured) with markup or
emoji codes in a model's producer and feature names, in column names, and in
paths given on the command line, then checks the exit code, that the printed
text holds the string verbatim, and that files are where the path says.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from mlship.console import Console
from tests.adversarial.files import relu_model, write_csv
from tests.support import run

# Closing tags that match nothing (rich raised MarkupError: exit 1), opening tags
# that rich swallowed (the wrong text printed), emoji codes, a trailing backslash.
HOSTILE = ["evil[/x]", "x[/bold]", "b[red]", "[/]", "[link=file:///etc/passwd]c", "e:smile:", "t\\"]


def evil_model(path: Path, features: list[str], producer: str = "evil[/x]", version: str = "[bold]1") -> Path:
    """Relu over [N, len(features)], with hostile producer and feature names."""
    return relu_model(path, features, producer=producer, version=version)


def csv_file(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    return write_csv(path, header, rows)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A model whose feature names are hostile, and data with those columns."""
    monkeypatch.chdir(tmp_path)
    features = ["x[/bold]", "b[red]"]
    model = evil_model(tmp_path / "evil.onnx", features)
    data = csv_file(tmp_path / "data.csv", [*features, "id[/i]"], [[1, 2, "a"], [3, 4, "b"]])
    return tmp_path, model, data


@pytest.mark.parametrize("producer,version", [("evil[/x]", "[bold]1"), ("[/]", "2"), ("p:smile:", "v\\")])
def test_check_prints_producer_and_feature_names_verbatim(project, producer, version):
    root, _, data = project
    model = evil_model(root / "m.onnx", ["x[/bold]", "b[red]"], producer, version)
    result = run("check", str(model), "--sample", str(data))
    assert result.code == 0, result.stderr
    assert f"producer {producer} {version};" in result.stdout
    assert "features: x[/bold], b[red]" in result.stdout
    assert "Traceback" not in result.stderr


def test_check_prints_a_hostile_sample_path_verbatim(project):
    root, model, data = project
    sample = root / "s[red]x:smile:.csv"
    sample.write_bytes(data.read_bytes())
    result = run("check", str(model), "--sample", str(sample))
    assert result.code == 0, result.stderr
    assert f"Latency ({sample.name})" in result.stdout or f"Latency ({sample})" in result.stdout
    assert f"smoke run: 2 rows from {sample}" in result.stdout or f"rows from {sample.name}" in result.stdout


@pytest.mark.parametrize("name", ["z[red]q.csv", "a:smile:b.csv", "[bold]x.jsonl", "[link=x]l.csv"])
def test_predict_prints_the_output_path_it_wrote(project, name):
    root, model, data = project
    result = run("predict", str(model), "--input", str(data), "--output", name, "--keep-columns", "id[/i]")
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n").endswith(f"-> {name}")
    assert (root / name).is_file()
    assert sorted(p.name for p in root.iterdir()) == sorted(["evil.onnx", "data.csv", name])


def test_predict_into_a_directory_named_like_a_closing_tag(project):
    root, model, data = project
    out = "d[/b]/o.csv"
    result = run("predict", str(model), "--input", str(data), "--output", out)
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n").endswith(f"-> {out}")
    written = (root / out).read_text().splitlines()
    assert written[0] == "y_0,y_1" and len(written) == 3


def test_predict_error_names_a_hostile_path_verbatim(project):
    root, model, _ = project
    result = run("predict", str(model), "--input", "missing[/x].csv", "--output", "o[red].csv")
    assert result.code == 3
    assert result.stderr.strip() == "error: no data files match missing[/x].csv"
    assert not (root / "o[red].csv").exists()


def test_drift_table_and_verdict_print_hostile_column_names(tmp_path):
    header = ["x[/bold]", "kind[red]", "t\\"]
    # Values repeat and have decimals, so no column reads as an identifier (left out of drift).
    ref = csv_file(tmp_path / "r[b]x.csv", header, [[i % 100 + 0.5, "a", i % 10] for i in range(300)])
    cur = csv_file(tmp_path / "c[red].csv", header, [[i % 100 + 500.5, "b", i % 10] for i in range(300)])
    result = run("drift", "--reference", str(ref), "--current", str(cur))
    assert result.code == 4, result.stderr
    assert f"reference {ref} (300 rows) vs current {cur} (300 rows)" in result.stdout
    # Captured output is a log: the table is plain text, cells apart by two spaces or more.
    cells = [re.split(r"\s{2,}", line.strip())[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"x[/bold]", "kind[red]", "t\\"} <= set(cells)
    # Drifted columns are named by effect size (issue 20), each verbatim.
    head, _, names = result.stderr.strip().partition(": ")
    assert head == "error" and names.startswith("drift found (dataset): ")
    assert sorted(names.removeprefix("drift found (dataset): ").split(", ")) == ["kind[red]", "x[/bold]"]


def test_profile_prints_its_output_path_verbatim(tmp_path):
    data = csv_file(tmp_path / "d.csv", ["a[/b]"], [[i] for i in range(10)])
    out = tmp_path / "p[/x]:smile:.json"
    result = run("profile", str(data), "--output", str(out))
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n").endswith(f"-> {out}")
    assert "a[/b]" in json.loads(out.read_text())["columns"]


def test_build_edge_prints_the_bundle_path_verbatim(project):
    root, model, _ = project
    result = run("build", str(model), "--edge", "--name", "evil", "--model-version", "1.0",
                 "--output-dir", "o[/b]x:smile:")
    assert result.code == 0, result.stderr
    bundle = Path("o[/b]x:smile:") / "evil-1.0.mlbundle"
    assert result.stdout.startswith(f"built {bundle} (")
    assert (root / bundle).is_file()


@pytest.mark.parametrize("text", HOSTILE)
def test_console_notes_warnings_errors_are_plain_text(text):
    out, err = io.StringIO(), io.StringIO()
    console = Console(stdout=out, stderr=err, verbose=True)
    console.info(f"note {text}")
    console.warn(f"careful {text}")
    console.debug(f"debug {text}")
    console.error(f"failed {text}", exit_code=3)
    assert err.getvalue().splitlines() == [f"note {text}", f"warning: careful {text}", f"debug {text}",
                                           f"error: failed {text}"]
    assert out.getvalue() == ""


def _terminal_console() -> tuple[Console, io.StringIO]:
    """A Console whose stderr is a (forced) terminal, so spinners and bars draw."""
    from rich.console import Console as RichConsole

    err = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=err)
    console.__dict__["err"] = RichConsole(file=err, force_terminal=True, width=200, highlight=False, emoji=False)
    assert console.shows_progress
    return console, err


@pytest.mark.parametrize("text", HOSTILE)
def test_status_spinner_takes_plain_text(text):
    console, _ = _terminal_console()
    with console.status(f"building {text}") as status:
        spinner = status._status.renderable  # what the terminal shows
        assert spinner.text.plain == f"building {text}"
        status.update(f"step {text}")  # build log lines go here
        assert status._status.renderable.text.plain == f"step {text}"


@pytest.mark.parametrize("text", HOSTILE)
def test_progress_bar_label_is_plain_text(text):
    from mlship.cli.progress import RowProgress

    console, err = _terminal_console()
    with RowProgress(console, f"pushing to {text}") as bar:
        bar.start(10)
        bar.advance(5)
    assert f"pushing to {text}" in err.getvalue()


# -- terminal control sequences ---------------------------------------------------

def test_terminal_escapes_in_a_model_string_are_shown_not_obeyed(tmp_path, monkeypatch):
    """A producer name with ESC sequences (recolour, clear screen, retitle) and a
    CR (overwrite the line) is printed as visible \\xNN text, never sent raw."""
    monkeypatch.chdir(tmp_path)
    producer = "evil\x1b[2J\x1b]0;pwned\x07\rok"
    model = evil_model(tmp_path / "esc.onnx", ["a", "b"], producer=producer)
    result = run("check", str(model))
    assert result.code == 0, result.stderr
    printed = result.stdout + result.stderr
    assert "\x1b" not in printed and "\x07" not in printed and "\r" not in printed
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\x0dok" in printed


def test_console_channels_show_control_characters(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    console = Console(stdout=out, stderr=err)
    console.info("a\x1b[31mb")
    console.warn("c\x9bd")
    console.error("e\rf", exit_code=3)
    text = err.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\r" not in text
    assert "a\\x1b[31mb" in text and "c\\x9bd" in text and "e\\x0df" in text


# -- class labels from the user's data and the model's graph ------------------------

HOSTILE_CLASSES = ["[red]x[/red]", "<img src=x onerror=alert(1)>", "a\x1b[31mb"]


@pytest.fixture(scope="module")
def hostile_classes(tmp_path_factory):
    """A three-class skl2onnx model whose class names (in the graph's classlabels_strings and in
    the labels) are markup, HTML and a terminal escape; its sample, and a labels file for its logs."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from tests.models_corpus import NUMERIC, _data, _skl, _write_csv

    root = tmp_path_factory.mktemp("classes")
    X, _, y = _data()
    names = np.array(HOSTILE_CLASSES, dtype=object)[y]
    _skl(LogisticRegression().fit(X, names), X, root / "model.onnx", zipmap=False)
    _write_csv(root / "sample.csv", {**{n: X[:, j] for j, n in enumerate(NUMERIC)}, "label": names})
    return root, names


def test_check_prints_hostile_class_names_verbatim_in_its_tables(hostile_classes):
    root, _ = hostile_classes
    result = run("check", str(root / "model.onnx"), "-s", str(root / "sample.csv"), "-l", "label",
                 "--features", "age,income,score,visits")
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and out.count("[red]x[/red]") >= 2  # per-class table and confusion matrix
    assert "<img src=x" in out and "a\\x1b[31mb" in out
    doc = run("--json", "check", str(root / "model.onnx"), "-s", str(root / "sample.csv"), "-l", "label",
              "--features", "age,income,score,visits").json()
    assert doc["quality"]["classes"]["confusion"]["labels"] == sorted(HOSTILE_CLASSES)


def test_drift_html_escapes_hostile_class_names(hostile_classes, tmp_path):
    root, names = hostile_classes
    logs = tmp_path / "logs"
    assert run("predict", str(root / "model.onnx"), "-i", str(root / "sample.csv"), "-o", str(tmp_path / "p.jsonl"),
               "--features", "age,income,score,visits", "--log-dir", str(logs)).code == 0
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"request_id": f"sample.csv:{i + 1}", "label": n}) + "\n"
                              for i, n in enumerate(names)))
    html = tmp_path / "r.html"
    result = run("--json", "drift", "-r", str(logs), "-c", str(logs), "--labels", str(labels), "--html", str(html),
                 "--fail-on", "never")
    assert result.code == 0, result.stderr
    assert result.json()["performance"]["current"]["classes"]["confusion"]["labels"] == sorted(HOSTILE_CLASSES)
    text = html.read_text()
    assert "<img" not in text
    section = text[text.index("<h2>Per class</h2>"):]
    section = section[:section.index("<h2>", 5)]
    assert section.count("&lt;img src=x onerror=alert(1)&gt;") >= 4  # table row, axis tooltips, cell tooltips
    assert "\x1b" not in section and "a\\x1b[31mb" in section and "[red]x[/red]" in section
