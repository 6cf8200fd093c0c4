"""Identifier and time columns: recognised, reported, left out of drift; the time column drives --window."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mlship.drift.comparison import column_role
from mlship.drift.detection import run_drift
from mlship.drift.profile import Profile, load_profile
from mlship.drift.settings import ColumnSettings, DriftOptions
from tests.drift.carloan import DRIFTING, STABLE, car_loan
from tests.support import run


def _role(values, **rule):
    profile = Profile()
    profile.add_frame({"c": np.asarray(values)}, len(values))
    found = column_role(profile.columns["c"], ColumnSettings(**rule))
    return found[0] if found else "feature"


RNG = np.random.default_rng(8)
STAMPS = [(datetime(2026, 1, 1) + timedelta(minutes=7 * i)).isoformat(sep=" ") for i in range(400)]


@pytest.mark.parametrize("values,role", [
    (np.arange(1000, 1400, dtype=float), "identifier"),  # a row number
    (RNG.permutation(10 ** 6)[:400].astype(float), "identifier"),  # unique whole numbers, any order
    (np.array([f"c-{RNG.integers(10 ** 12):012d}" for _ in range(400)], dtype=object), "identifier"),
    (np.array(STAMPS, dtype=object), "time"),
    (np.array([s.replace(" ", "T") + "Z" for s in STAMPS], dtype=object), "time"),
    (RNG.normal(0, 1, 400), "feature"),  # unique, but measurements
    (np.sort(RNG.normal(0, 1, 400)), "feature"),  # increasing measurements
    (RNG.integers(0, 100, 400).astype(float), "feature"),  # whole numbers that repeat
    (np.array(["a", "b", "c", "d"] * 100, dtype=object), "feature"),
    (np.arange(30, dtype=float), "feature"),  # too few values to tell
])
def test_roles_are_inferred(values, role):
    assert _role(values) == role


def test_declared_roles_win():
    assert _role(np.arange(400, dtype=float), role="feature") == "feature"
    assert _role(RNG.normal(0, 1, 400), role="identifier") == "identifier"
    assert _role(RNG.normal(0, 1, 400), role="time") == "time"


def test_roles_survive_saving_and_merging_pieces(tmp_path):
    ids = np.arange(6000, dtype=float)
    parts = [Profile() for _ in range(3)]
    for part, chunk in zip(parts, np.split(ids, 3)):
        part.add_frame({"id": chunk, "again": np.arange(2000, dtype=float)}, len(chunk))
    merged = Profile()
    for i, part in enumerate(parts):
        path = tmp_path / f"p{i}.json"
        path.write_text(json.dumps(part.to_json()))
        merged.merge(load_profile(path))
    assert column_role(merged.columns["id"], ColumnSettings())[0] == "identifier"
    assert column_role(merged.columns["again"], ColumnSettings()) is None  # each piece unique, the whole not
    out_of_order = Profile()
    out_of_order.merge(parts[1])
    out_of_order.merge(parts[0])
    assert not out_of_order.columns["id"].signals.increasing


def test_a_profile_made_before_roles_reads_every_column_as_a_feature(tmp_path):
    profile = Profile()
    profile.add_frame({"id": np.arange(500, dtype=float)}, 500)
    doc = profile.to_json()
    del doc["columns"]["id"]["signals"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    assert column_role(load_profile(path).columns["id"], ColumnSettings()) is None


def _rows_csv(path, n, start, shift=0.0):
    rng = np.random.default_rng(int(start.timestamp()))
    lines = ["request,when,x,k"]
    for i in range(n):
        when = (start + timedelta(minutes=10 * i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"r{start:%m%d}-{i},{when},{rng.normal(shift, 1):.5f},{rng.choice(['a', 'b'])}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_data_files_get_time_windows_from_their_time_column(tmp_path):
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    ref = _rows_csv(tmp_path / "ref.csv", 2000, start - timedelta(days=30))
    days = [_rows_csv(tmp_path / f"day{d}.csv", 144, start + timedelta(days=d), shift=1.0 if d >= 4 else 0.0)
            for d in range(6)]
    current = tmp_path / "current.csv"
    current.write_text(days[0].read_text() + "".join(d.read_text().split("\n", 1)[1] for d in days[1:]))
    report = run_drift(DriftOptions(reference=str(ref), current=str(current), window="1d", min_rows=100)).document()
    by = {c["name"]: c for c in report["columns"]}
    assert (by["request"]["role"], by["when"]["role"]) == ("identifier", "time")
    assert by["request"]["ignored"] and by["when"]["ignored"] and not by["when"]["drifted"]
    assert [w["start"] for w in report["windows"]] == [f"2026-03-0{d + 1}T00:00:00Z" for d in range(6)]
    assert [w["dataset_drift"] for w in report["windows"]] == [False] * 4 + [True] * 2
    assert {"request", "when"}.isdisjoint(c for w in report["windows"] for c in w["drifted_columns"])


def test_without_a_time_column_time_windows_are_a_usage_error(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x\n" + "".join(f"{i % 7}.5\n" for i in range(300)))
    result = run("drift", "-r", str(data), "-c", str(data), "--window", "1d")
    assert result.code == 2 and "or a time column" in result.stderr and result.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    return car_loan(tmp_path_factory.mktemp("carloan"))


def test_car_loan_id_and_timestamp_are_not_judged_and_the_second_half_drifts(loans):
    report = run_drift(DriftOptions(reference=str(loans["reference"]), current=str(loans["analysis"]),
                                    window="5000rows")).document()
    by = {c["name"]: c for c in report["columns"]}
    assert (by["id"]["role"], by["timestamp"]["role"]) == ("identifier", "time")
    assert not by["id"]["drifted"] and not by["timestamp"]["drifted"] and "stats" not in by["timestamp"]
    windows = report["windows"]
    assert len(windows) == 10 and all(w["drifted_columns"] == [] for w in windows[:5])
    for w in windows[5:]:
        assert set(DRIFTING) <= set(w["drifted_columns"]) and not set(STABLE) & set(w["drifted_columns"])
    assert not set(STABLE) & set(report["drifted_columns"])


def test_car_loan_timestamp_drives_time_windows(loans, tmp_path):
    ref, cur = str(loans["reference"]), str(loans["analysis"])
    result = run("drift", "-r", ref, "-c", cur, "--window", "30d", "--json-out", "-", "--fail-on", "never")
    windows = json.loads(result.stdout)["windows"]
    assert windows[0]["start"].startswith("2018-10") and windows[-1]["start"].startswith("2019-08")
    assert sum(w["rows"] for w in windows) == 50_000
