"""Verdicts people can read: the headline about windows and the exit code that follows it,
drifted columns first, both sides' summaries, and how each column was judged."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlship.drift.detection import run_drift
from mlship.drift.settings import DriftOptions
from tests.drift.logs import START, write_days, write_log
from tests.support import run


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """A reference and seven days of logs: days 5 and 6 drifted (with less traffic, so the week as
    a whole does not drift), then a thin eighth day."""
    rng = np.random.default_rng(9)
    days = [(1000, None)] * 5 + [(300, {"age": 8.0})] * 2
    ref, logs = write_days(tmp_path_factory.mktemp("week"), rng, days, reference_rows=3000)
    write_log(logs / "day7.jsonl", rng, START + timedelta(days=7), 1, 50)
    return ref, logs


def test_with_windows_the_headline_counts_drifted_windows_and_the_exit_code_follows_it(week):
    ref, logs = week
    result = run("drift", "-r", str(ref), "-c", str(logs), "--window", "1d", "--json-out", "-")
    assert result.code == 4, result.stderr  # no --fail-on: the headline decides
    report = json.loads(result.stdout)
    verdict = report["verdict"]
    assert verdict["scope"] == "windows" and verdict["drift"] is True
    assert (verdict["windows"], verdict["drifted_windows"], verdict["since"]) == (8, 2, "2026-11-06")
    assert verdict["text"] == "DRIFT in 2 of 8 windows, since 2026-11-06 (1 too small to judge)"
    assert report["dataset_drift"] is False  # the week as a whole: most of it is clean
    # The old question is still there to ask, and answers as before.
    assert run("drift", "-r", str(ref), "-c", str(logs), "--window", "1d", "--fail-on", "dataset").code == 0
    text = run("drift", "-r", str(ref), "-c", str(logs), "--window", "1d")
    assert "DRIFT in 2 of 8 windows, since 2026-11-06" in text.stdout and "all windows together: no dataset" \
        in text.stdout
    # The statistic and threshold each column was judged with are printed, not only stored.
    assert "judged by: KS: WD ≥ 0.1σ or PSI ≥ 0.2 (sketched) for " in text.stdout
    assert "χ²: JS ≥ 0.1 or unseen ≥ 5% (exact) for " in text.stdout


def test_drift_that_ended_is_dated_and_a_clean_week_says_so(tmp_path):
    days = [(500, None), (500, {"age": 15.0, "length_of_stay": 1.0}), (500, None), (500, None)]
    ref, logs = write_days(tmp_path, np.random.default_rng(3), days, reference_rows=3000)
    doc = run_drift(DriftOptions(reference=str(ref), current=str(logs), window="1d")).document()
    assert doc["verdict"]["text"] == "DRIFT in 1 of 4 windows (2026-11-02; the latest window has none)"
    assert doc["verdict"]["since"] is None if "since" in doc["verdict"] else True
    clean = run_drift(DriftOptions(reference=str(ref), current=str(logs / "day3.jsonl"), window="6h",
                                   min_rows=50)).document()
    assert clean["verdict"]["drift"] is False
    assert clean["verdict"]["text"] == "no drift in any of 4 windows"
    # Hourly windows keep their time of day in the headline.
    hourly = run_drift(DriftOptions(reference=str(ref), current=str(logs / "day1.jsonl"), window="6h",
                                    min_rows=50)).document()
    assert hourly["verdict"]["since"] == "2026-11-02 00:00"


def test_drifted_columns_come_first_then_by_effect_size(tmp_path):
    rng = np.random.default_rng(5)
    n = 5000

    def data(shift: float) -> dict:
        return {"a_steady": rng.normal(0, 1, n), "b_big": rng.normal(3 * shift, 1, n),
                "c_small": rng.normal(0.4 * shift, 1, n), "d_tiny": rng.normal(0.03 * shift, 1, n),
                "e_cat": rng.choice(["x", "y", "z"], n, p=[0.2, 0.3, 0.5] if shift else [0.4, 0.3, 0.3])}

    pq.write_table(pa.table(data(0)), tmp_path / "ref.parquet")
    pq.write_table(pa.table(data(1)), tmp_path / "cur.parquet")
    doc = run_drift(DriftOptions(reference=str(tmp_path / "ref.parquet"),
                                 current=str(tmp_path / "cur.parquet"))).document()
    names = [c["name"] for c in doc["columns"]]
    drifted = [c for c in doc["columns"] if c["drifted"]]
    assert {c["name"] for c in drifted} == {"b_big", "c_small", "e_cat"}
    assert names[:3] == [c["name"] for c in drifted]  # drifted first ...
    effects = [c["effect"] for c in doc["columns"]]
    assert effects[:3] == sorted(effects[:3], reverse=True) and effects[3:] == sorted(effects[3:], reverse=True)
    assert names[0] == "b_big" and doc["drifted_columns"] == names[:3]


def test_both_sides_are_summarised_and_the_method_is_stated(tmp_path):
    rng = np.random.default_rng(11)
    ref = {"x": rng.lognormal(0, 1, 50_000), "small": rng.normal(0, 1, 500),
           "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv", "Baku", "Rome"], 50_000,
                              p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])}
    ref["small"] = np.concatenate([ref["small"], np.full(49_500, np.nan)])
    cur = {"x": rng.lognormal(0.5, 1, 1000), "small": rng.normal(0, 1, 1000), "city": rng.choice(["Oslo", "Lima"], 1000)}
    pq.write_table(pa.table(ref), tmp_path / "ref.parquet")
    pq.write_table(pa.table(cur), tmp_path / "cur.parquet")
    doc = run_drift(DriftOptions(reference=str(tmp_path / "ref.parquet"),
                                 current=str(tmp_path / "cur.parquet"))).document()
    cols = {c["name"]: c for c in doc["columns"]}
    for side, values in (("reference_summary", ref["x"]), ("current_summary", cur["x"])):
        got = cols["x"][side]["quantiles"]
        for q in (5, 25, 50, 75, 95):  # exact below 2000 values, else within the sketch's 0.2%
            assert got[f"p{q}"] == pytest.approx(np.percentile(values, q, method="inverted_cdf"), rel=0.003), (side, q)
    assert cols["x"]["reference_summary"]["std"] == pytest.approx(np.std(ref["x"]), rel=1e-9)
    assert cols["small"]["reference_summary"]["missing_share"] == pytest.approx(0.99)
    top = cols["city"]["reference_summary"]["top"]
    assert [t["value"] for t in top] == ["Oslo", "Lima", "Pune", "Baku", "Kyiv"]  # ties by name
    assert top[0]["share"] == pytest.approx(0.3, abs=0.01) and len(top) == 5
    assert {t["value"] for t in cols["city"]["current_summary"]["top"]} == {"Oslo", "Lima"}
    # How each column was judged: by type and by sample size (exact values or the sketch).
    assert cols["x"]["method"]["statistic"] == "wasserstein_norm" and cols["x"]["method"]["exact"] is False
    assert cols["x"]["method"]["text"].startswith("numeric, 50,000 vs 1,000 values (sketched): KS test")
    assert cols["small"]["method"]["exact"] is True and "(exact)" in cols["small"]["method"]["text"]
    assert cols["city"]["method"] == {
        "test": "chi2", "statistic": "js", "threshold": 0.1, "also": "unseen_share >= 0.05", "exact": True,
        "text": "categorical, 50,000 vs 1,000 values (exact counts): chi-square test; drifts at Jensen-Shannon "
                ">= 0.1 or >= 5% unseen values, if its test's adjusted p < 0.05"}
