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


def rendered_page(chromium: str, html: Path, tmp_path: Path) -> str:
    """The report's DOM after chromium rendered it, once checked self-contained (no script,
    nothing fetched) and rendered without console messages."""
    text = html.read_text()
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?://", text)
    dom = browse(chromium, html, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    return dom.stdout


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


def test_a_hundred_columns_stay_one_small_file_with_details_and_labelled_axes(tmp_path, chromium):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(8)

    def data(n: int, shift: float) -> dict:
        cols = {f"num_{i:02d}": rng.normal(shift * (i % 3 == 0), 1, n) for i in range(80)}
        cols.update({f"cat_{i:02d}": rng.choice([f"category-{k}-with-a-long-name" for k in range(12)], n)
                     for i in range(20)})
        return cols

    pq.write_table(pa.table(data(20_000, 0.0)), tmp_path / "ref.parquet")
    pq.write_table(pa.table(data(6000, 0.5)), tmp_path / "cur.parquet")
    html = tmp_path / "report.html"
    result = run("drift", "-r", str(tmp_path / "ref.parquet"), "-c", str(tmp_path / "cur.parquet"),
                 "--window", "1000rows", "--html", str(html))
    assert result.code in (0, 4), result.stderr
    size = html.stat().st_size
    assert size < 2_000_000, size
    page = rendered_page(chromium, html, tmp_path)
    assert "<h2>Column details</h2>" in page and page.count("<details") == 100
    # Drifted columns lead the table (num_00, num_03, ... moved by half a standard deviation).
    first = re.findall(r"<tr><td><a href=\"#col-[0-9a-f]+\">([^<]+)</a>", page)
    assert len(first) == 100 and all(int(n[4:]) % 3 == 0 for n in first[:27]), first[:30]
    # Categorical charts name their categories under the bars (cut to 12 characters).
    assert page.count("class=\"cat\"") == 20 * 12 and "category-0-…" in page
    assert "judged by: numeric, 20,000 vs 6,000 values (sketched)" in page
    shot = tmp_path / "hundred.png"
    capture = browse(chromium, html, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000")
    assert capture.returncode == 0 and shot.stat().st_size > 20_000
