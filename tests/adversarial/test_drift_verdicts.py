"""Drift verdicts a CI job acts on: `--fail-on` conditions that could never be met, and
data that is odd in shape (a type change mid-file, an all-null column, one row, no rows).

Found: `--fail-on window` without `--window` passed silently (exit 0) even with the
dataset drifted (now exit 2); `--fail-on column:NAME` for a column the data does not have
passed without a word (then a warning; now exit 2 naming the columns, before any report is
written); data too small to judge (one row, or every window under --min-rows) reported "no
drift" with exit 0 (now exit 5, "not enough data to judge", unless `--fail-on never`).
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
def test_fail_on_a_column_the_data_does_not_have_is_refused(drifted, tmp_path, name):
    # It could never fail: a typo in a CI job passed without a word.
    ref, cur = drifted
    result = run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", f"column:{name}", "--json-out", "r.json")
    assert_one_line_error(2, result, "--fail-on column:", "(columns: a, b, empty)", "--fail-on never")
    assert "\x1b" not in result.stderr
    assert not (tmp_path / "r.json").exists()  # nothing written for a run that was refused


def test_fail_on_never_reports_only(drifted, tmp_path):
    ref, cur = drifted
    result = run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "never", "--fail-on", "never",
                 "--json-out", "r.json")
    assert result.code == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert "a" in report["drifted_columns"]  # drift was found and reported, and did not fail the job
    combined = run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "never", "--fail-on", "any")
    assert_one_line_error(2, combined, "--fail-on never", "cannot be combined")


def test_every_window_too_small_is_not_a_pass(drifted, tmp_path):
    ref, cur = drifted  # 400 current rows in 50-row windows, all under --min-rows 200
    result = run("drift", "-r", str(ref), "-c", str(cur), "-w", "50rows", "--json-out", "r.json")
    assert_one_line_error(5, result, "not enough data to judge --fail-on window",
                          "all 8 windows are too small to judge", "--min-rows")
    verdict = json.loads((tmp_path / "r.json").read_text())["verdict"]
    assert verdict["judged"] is False and verdict["drift"] is False  # the report is still written
    assert run("drift", "-r", str(ref), "-c", str(cur), "-w", "50rows", "--fail-on", "never").code == 0
    # one judged window is enough to judge: 200-row windows
    judged = run("drift", "-r", str(ref), "-c", str(cur), "-w", "200rows", "--json-out", "j.json")
    assert judged.code == 4, judged.stderr  # the second window (all "word") drifted
    assert "judged" not in json.loads((tmp_path / "j.json").read_text())["verdict"]


def test_drift_found_in_a_small_window_still_exits_4(drifted, tmp_path):
    # Drift is drift even when other conditions could not be judged.
    ref, cur = drifted
    result = run("drift", "-r", str(ref), "-c", str(cur), "-w", "50rows", "--fail-on", "window",
                 "--fail-on", "quality")
    assert result.code == 4 and "data quality: data_type_check 1" in result.stderr, result.stderr


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


@pytest.mark.parametrize("rows,code,words", [(1, 5, ["not enough data to judge --fail-on dataset",
                                                     "every column is too small"]),
                                              (0, 3, ["no rows to compare"])])
def test_one_row_or_none(drifted, tmp_path, rows, code, words):
    ref, _ = drifted
    small = _write(tmp_path / "small.csv", ["0.5"] * rows)
    result = run("drift", "-r", str(ref), "-c", str(small))
    assert result.code == code, result.stderr
    assert all(w in result.stderr for w in words) and "Traceback" not in result.stderr
