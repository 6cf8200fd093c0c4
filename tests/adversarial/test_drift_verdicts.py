"""Drift verdicts a CI job acts on: `--fail-on` conditions that could never be met, and
data that is odd in shape (a type change mid-file, an all-null column, one row, no rows).

Found: `--fail-on window` without `--window` passed silently (exit 0) even with the
dataset drifted (now exit 2); `--fail-on column:NAME` for a column the data does not have
passed without a word (now a warning naming the columns).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.adversarial.files import assert_one_line_error
from tests.support import run

N = 400


def _write(path: Path, a: list[object]) -> Path:
    b = np.random.default_rng(7).choice(["x", "y"], len(a))
    path.write_text("a,b,empty\n" + "".join(f"{x},{y},\n" for x, y in zip(a, b)))
    return path


@pytest.fixture
def drifted(tmp_path, monkeypatch):
    """ref.csv and cur.csv: `a` turns to text half-way through cur (a type change mid-file)."""
    monkeypatch.chdir(tmp_path)
    ref = _write(tmp_path / "ref.csv", [f"{v:.4f}" for v in np.random.default_rng(1).normal(0, 1, N)])
    cur_values = [f"{v:.4f}" for v in np.random.default_rng(2).normal(0, 1, N // 2)] + ["word"] * (N // 2)
    cur = _write(tmp_path / "cur.csv", cur_values)
    return ref, cur


@pytest.mark.parametrize("name", ["zz", "A", "a ", "<b>", "a\x1b[31m"])
def test_fail_on_a_column_the_data_does_not_have_is_warned(drifted, name):
    # It can never fail: a typo in a CI job passed without a word. (Exit 0 stays: tests and jobs
    # use column:none as "report only".)
    ref, cur = drifted
    result = run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", f"column:{name}")
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: --fail-on column:")]
    assert len(lines) == 1 and "so it never fails (columns: a, b, empty)" in lines[0]
    assert "\x1b" not in result.stderr


def test_fail_on_a_column_that_exists_is_judged(drifted):
    ref, cur = drifted
    assert run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "column:b").code == 0
    failed = run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "column:a")
    assert failed.code == 4 and "drift found (column:a): a" in failed.stderr


def test_fail_on_window_without_windows_is_refused_before_reading(drifted, tmp_path):
    ref, cur = drifted
    result = run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "window", "--json-out", "r.json")
    assert_one_line_error(2, result, "--fail-on window", "--window")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("value", ["", "bogus", "column:", "dataset,any", "QUALITY"])
def test_bad_fail_on_values(drifted, value):
    ref, cur = drifted
    assert_one_line_error(2, run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", value), "--fail-on")


def test_type_change_mid_file_and_an_all_null_column(drifted, tmp_path):
    ref, cur = drifted
    result = run("drift", "-r", str(ref), "-c", str(cur), "--json-out", "r.json", "--fail-on", "quality")
    assert result.code == 4, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    checks = {(v["constraint_check_type"], v["feature_name"]) for v in report["quality"]["violations"]}
    assert ("data_type_check", "a") in checks
    empty = next(c for c in report["columns"] if c["name"] == "empty")
    assert empty["drifted"] is False  # nothing to judge is no drift


@pytest.mark.parametrize("rows,code,words", [(1, 0, []), (0, 3, ["no rows to compare"])])
def test_one_row_or_none(drifted, tmp_path, rows, code, words):
    ref, _ = drifted
    small = _write(tmp_path / "small.csv", ["0.5"] * rows)
    result = run("drift", "-r", str(ref), "-c", str(small))
    assert result.code == code, result.stderr
    assert all(w in result.stderr for w in words) and "Traceback" not in result.stderr
