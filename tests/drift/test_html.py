"""The HTML report in a real browser: renders, no console errors, charts present."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np

from tests.drift.logs import START, write_log
from tests.support import run

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browse(chromium: str, page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           *extra, page.as_uri()], capture_output=True, text=True, timeout=120)


def test_html_report_renders_in_chromium_with_its_charts(tmp_path, chromium):
    rng = np.random.default_rng(4)
    ref = tmp_path / "ref.jsonl"
    write_log(ref, rng, START - timedelta(days=10), 48, 3000, labels=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    for day in range(4):
        write_log(logs / f"d{day}.jsonl", rng, START + timedelta(days=day), 24, 600, labels=True,
                  shift={"age": 10.0, "group": 1.0} if day >= 2 else None, error_rate=0.02)
    html = tmp_path / "report.html"
    result = run("drift", "-r", str(ref), "-c", str(logs), "--window", "1d", "--html", str(html))
    assert result.code == 4, result.stderr
    text = html.read_text()
    assert not re.search(r"(src|href)=['\"]https?://", text), "the report must not fetch anything"
    assert "<script" not in text

    dom = browse(chromium, html, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert dom.stdout.count("<svg") >= 8  # histograms, drift over time, effect sizes, performance, latency
    for title in ("Distributions", "Over time", "Performance", "Operations"):
        assert f"<h2>{title}</h2>" in dom.stdout
    assert "data-column=\"age\"" in dom.stdout and "DATASET DRIFT" in dom.stdout

    artifacts = Path(os.environ.get("MLSHIP_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "drift-report.png"
    capture = browse(chromium, html, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400")
    assert capture.returncode == 0 and shot.stat().st_size > 20_000
