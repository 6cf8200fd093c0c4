"""Data quality beside drift: each kind of problem found once, under SageMaker Model Monitor's
check names, and `--fail-on quality`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mlship.drift.detection import run_drift
from mlship.drift.settings import DriftOptions
from tests.support import run


def write_csv(path, columns: dict) -> None:
    names = list(columns)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A reference and current data with one problem per column (and one healthy column)."""
    rng = np.random.default_rng(20)
    tmp = tmp_path_factory.mktemp("quality")
    n, m = 4000, 3000

    def blanks(values, share):
        return ["" if r < share else f"{v:.5f}" for v, r in zip(values, rng.random(len(values)))]

    ref = {"steady": rng.normal(0, 1, n).round(5), "gone": rng.normal(0, 1, n).round(5),
           "typed": rng.normal(0, 1, n).round(5), "sparse": blanks(rng.normal(0, 1, n), 0.02),
           "wide": rng.random(n).round(5), "flat": rng.normal(3, 1, n).round(5),
           "city": rng.choice(["Oslo", "Lima", "Pune"], n)}
    wide = rng.random(m).round(5)
    wide[rng.random(m) < 0.02] = 1.2  # 2% above the reference's maximum, too few to move the distribution
    typed = [("n/a" if r < 0.1 else f"{v:.5f}") for v, r in zip(rng.normal(0, 1, m), rng.random(m))]
    cur = {"steady": rng.normal(0, 1, m).round(5), "new": rng.normal(0, 1, m).round(5), "typed": typed,
           "sparse": blanks(rng.normal(0, 1, m), 0.3), "wide": wide, "flat": np.full(m, 3.0),
           "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], m, p=[0.3, 0.3, 0.3, 0.1])}
    write_csv(tmp / "ref.csv", ref)
    write_csv(tmp / "cur.csv", cur)
    return tmp / "ref.csv", tmp / "cur.csv"


def test_each_problem_is_a_violation_with_sagemakers_check_name(damaged):
    ref, cur = damaged
    doc = run_drift(DriftOptions(reference=str(ref), current=str(cur))).document()
    found = {(v["feature_name"], v["constraint_check_type"]) for v in doc["quality"]["violations"]}
    assert {name for name, _ in found} == {"gone", "new", "typed", "sparse", "wide", "flat", "city"}  # steady: none
    assert {check for name, check in found if name == "gone"} == {"missing_column_check"}
    assert {check for name, check in found if name == "new"} == {"extra_column_check"}
    assert "data_type_check" in {check for name, check in found if name == "typed"}
    assert {"completeness_check", "baseline_drift_check"} <= {check for name, check in found if name == "sparse"}
    assert {check for name, check in found if name == "wide"} == {"value_range_check"}
    assert {"constant_column_check", "baseline_drift_check"} <= {check for name, check in found if name == "flat"}
    assert "categorical_values_check" in {check for name, check in found if name == "city"}
    quality = doc["quality"]
    assert quality["missing_columns"] == ["gone"] and quality["extra_columns"] == ["new"]
    assert quality["constant_columns"] == ["flat"]
    assert quality["counts"]["value_range_check"] == 1 and sum(quality["counts"].values()) == len(found)
    cols = {c["name"]: c for c in doc["columns"]}
    wide = cols["wide"]["quality"]
    assert wide["above_range"] == pytest.approx(0.02 * 3000, rel=0.3) and wide["below_range"] == 0
    assert cols["sparse"]["quality"]["completeness_reference"] == pytest.approx(0.98, abs=0.01)
    assert cols["sparse"]["quality"]["completeness_current"] == pytest.approx(0.70, abs=0.03)
    assert cols["city"]["quality"]["unseen_share"] == pytest.approx(0.1, abs=0.02)
    assert cols["steady"]["quality"]["out_of_range_share"] < 0.01
    typed = next(v for v in quality["violations"] if v["constraint_check_type"] == "data_type_check")
    assert typed["description"].startswith("numeric -> categorical: ") and " text and " in typed["description"]


def test_fail_on_quality_exits_4_where_drift_alone_would_pass(tmp_path):
    rng = np.random.default_rng(1)
    write_csv(tmp_path / "ref.csv", {"a": rng.normal(0, 1, 2000).round(5), "b": rng.normal(0, 1, 2000).round(5)})
    write_csv(tmp_path / "cur.csv", {"a": rng.normal(0, 1, 1000).round(5), "c": rng.normal(0, 1, 1000).round(5)})
    args = ["drift", "-r", str(tmp_path / "ref.csv"), "-c", str(tmp_path / "cur.csv")]
    plain = run(*args)
    assert plain.code == 0, plain.stderr
    assert "data quality: 2 violations (missing_column_check 1, extra_column_check 1)" in plain.stdout
    failed = run(*args, "--fail-on", "quality")
    assert failed.code == 4
    assert "data quality: missing_column_check 1, extra_column_check 1" in failed.stderr


def test_values_of_any_type_are_counted_never_a_crash(tmp_path):
    rng = np.random.default_rng(2)
    with (tmp_path / "ref.jsonl").open("w") as fh:
        for v in rng.normal(0, 1, 500):
            fh.write(json.dumps({"x": float(v), "flag": bool(v > 0)}) + "\n")
    odd = [{"a": 1}, [1, 2], True, "text", None, 3.5, 10**30]
    with (tmp_path / "cur.jsonl").open("w") as fh:
        for i in range(700):
            fh.write(json.dumps({"x": odd[i % len(odd)], "flag": odd[(i + 3) % len(odd)]}) + "\n")
    result = run("drift", "-r", str(tmp_path / "ref.jsonl"), "-c", str(tmp_path / "cur.jsonl"), "--json-out", "-",
                 "--fail-on", "never")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in doc["quality"]["violations"]}
    assert ("x", "data_type_check") in checks and ("x", "completeness_check") in checks
    x = next(c for c in doc["columns"] if c["name"] == "x")
    assert x["type"]["current_values"] == {"numbers": 200, "text": 400}  # 3.5 and 10**30; dict, list, bool, text
