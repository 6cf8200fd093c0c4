"""`mlship demo`: the whole pipeline on one machine, as a real process."""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timedelta, timezone

from tests.support import run_process


def test_demo_runs_the_pipeline_and_finds_the_injected_drift(tmp_path):
    started = time.monotonic()
    result = run_process("--json", "demo", "--dir", str(tmp_path / "demo"), "--step-seconds", "1.5")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert elapsed < 60, elapsed
    summary = json.loads(result.stdout)
    demo = tmp_path / "demo"
    # The rollout ended promoted, with no failed request.
    assert summary["rollout"]["phase"] == "Healthy" and summary["rollout"]["stable"]["version"] == "1.1.0"
    assert summary["rollout"]["failed"] == 0 and summary["rollout"]["requests"] > 500
    state = json.loads((demo / ".mlship" / "rollouts" / "readmission.json").read_text())
    verbs = [e["verb"] for e in state["history"]]
    assert verbs[:3] == ["start", "step", "promote"] and verbs.count("step") == 4
    assert 0.3 < summary["shadow"]["agreement"] < 1.0  # the two versions differ, and the report says how much
    # The drift report exists and flags exactly the two days with injected drift.
    report = demo / "reports" / "drift.html"
    assert report.is_file() and "<html" in report.read_text()[:2000].lower()
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    expected = [(today - timedelta(days=d)).strftime("%Y-%m-%d 00:00") for d in (2, 1)]
    assert summary["drift"]["exit_code"] == 4 and summary["drift"]["windows"] == 7
    assert summary["drift"]["drifted_windows"] == expected
    # The headline is about the windows (not "no dataset drift" over a week that is mostly clean),
    # and the model's outputs are judged: the training data was scored once.
    assert summary["drift"]["verdict"].startswith(f"DRIFT in 2 of 7 windows, since {expected[0][:10]}")
    assert summary["drift"]["outputs_judged"], summary["drift"]
    assert "DRIFT in 2 of 7 windows" in report.read_text()
    # Hybrid push: the bundle is in both targets with the channel pointer.
    for target in ("cloud", "onprem"):
        channel = json.loads((demo / "targets" / target / "readmission" / "channels" / "stable.json").read_text())
        assert channel["version"] == "1.1.0"
    with open(summary["scored"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5000 and rows[0]["stay_id"] == "stay-000000" and "label" in rows[0]


def test_demo_text_output_points_at_the_report(tmp_path):
    result = run_process("demo", "--dir", str(tmp_path / "d"), "--step-seconds", "1")
    assert result.code == 0, result.stderr
    assert f"report: {tmp_path / 'd' / 'reports' / 'drift.html'}" in result.stdout
    assert "1/8" in result.stderr and "8/8" in result.stderr
