"""Output that reads in a log: every command, run with its output captured (not a
terminal) on a real project (`mlship demo`'s), prints tables as aligned plain
text with no cell cut or wrapped, timestamps whole and lists whole or counted."""

from __future__ import annotations

import io
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlship.cli import COMMANDS, main
from mlship.cli.progress import ProgressLines
from mlship.console import Console
from tests.support import MODEL, ROOT, Result, run

pytestmark = pytest.mark.integration  # the demo serves two versions behind its file router

COLUMNS = 60
# A column name longer than the line: it must stay whole, on one line.
LONG = "days_since_first_admission_to_the_emergency_department_of_the_hospital"
BOXES = set("│┃─━┏┓┗┛┡┩╇╈┼╭╮╰╯")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`mlship demo`'s directory: a model, a sample, two file targets, a rollout with
    history, the versions store, a week of prediction logs."""
    directory = tmp_path_factory.mktemp("plain") / "demo"
    demo = run("demo", "--dir", str(directory))  # 2 s of traffic per step: enough on a busy machine
    assert demo.code == 0, demo.stderr
    return directory, demo


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project[0])
    monkeypatch.setenv("COLUMNS", str(COLUMNS))
    return project[0]


def readable(result: Result, *whole: str) -> str:
    """Assert nothing in the output is cut, wrapped or boxed; return stdout + stderr."""
    text = result.stdout + result.stderr
    assert not BOXES & set(text), "a table was drawn with borders in a log"
    for line in text.splitlines():
        for cut in re.finditer("…", line):
            assert re.match(r"… and \d+ more", line[cut.start():]), f"cut: {line!r}"
    for stamp in re.finditer(r"\d{4}-\d\d-\d\d[T ][\d:.]*", text):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?", stamp.group()), f"cut: {stamp.group()}"
    for value in whole:
        assert any(value in line for line in text.splitlines()), f"{value!r} is not whole on one line:\n{text}"
    return text


def _drift_files(directory: Path) -> tuple[Path, Path]:
    ref, cur = directory / "long-ref.csv", directory / "long-cur.csv"
    ref.write_text(f"{LONG},age\n" + "".join(f"{i % 50},{30 + i % 40}\n" for i in range(400)))
    cur.write_text(f"{LONG},age\n" + "".join(f"{20 + i % 50},{30 + i % 40}\n" for i in range(400)))
    return ref, cur


def _serve(directory: Path) -> Result:
    """`mlship serve` as a process with its stdout in a file: the line it prints when ready."""
    from tests.harness.ports import free_port, wait_until
    from tests.harness.services import http_request

    port = free_port()
    out, err = directory / "serve.out", directory / "serve.err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "mlship", "serve", "--port", str(port)], stdout=o, stderr=e,
                                cwd=directory, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: http_request("GET", f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status == 200,
                   60, "mlship serve", log=err, process=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    return Result(code, out.read_text(), err.read_text())


def scenario(name: str, directory: Path, demo: Result) -> list[tuple[Result, tuple[str, ...]]]:
    """Each command's realistic runs here, with the values that must come out whole."""
    cloud = f"file://{directory / 'targets' / 'cloud'}"
    if name == "check":
        return [(run("check"), (str(directory / "data" / "sample.csv"),)),
                (run("check", str(MODEL)), ("mean_radius, mean_texture, mean_perimeter, mean_area, … and 26 more",))]
    if name == "serve":
        return [(_serve(directory), ("/v2/models/readmission/infer",))]
    if name == "predict":
        return [(run("predict", "-i", "data/history.csv", "-o", "scored.csv"), ("5,000 rows scored", "-> scored.csv"))]
    if name == "build":
        return [(run("build", "--edge"), ("readmission-1.1.0.mlbundle",))]
    if name == "push":
        return [(run("push", "dist/readmission-1.1.0.mlbundle", "--to", "cloud", "--to", "onprem"), (cloud,))]
    if name == "promote":
        return [(run("promote", "readmission", "1.1.0", "--channel", "beta", "--to", "cloud"), ())]
    if name == "pull":
        shutil.rmtree(directory / "pulled", ignore_errors=True)
        return [(run("pull", "readmission@stable", "--from", "cloud", "-o", "pulled"), ("into pulled",))]
    if name == "drift":
        ref, cur = _drift_files(directory)
        return [(run("drift", "-c", "logs/week", "--window", "1d"), ("outputs.probabilities_1",)),
                (run("drift", "-r", str(ref), "-c", str(cur)), (LONG, str(ref)))]
    if name == "profile":
        return [(run("profile", "data/train.csv", "-o", "train.profile.json"), ("-> train.profile.json",))]
    if name == "init":
        (directory / "fresh").mkdir(exist_ok=True)
        return [(run("init", "--dir", "fresh", "--model", "data/model-1.1.0.onnx", "--sample", "data/sample.csv",
                     "--force"), ())]
    if name == "demo":
        return [(demo, (str(directory / "reports" / "drift.html"),))]
    if name == "targets":
        return [(run("targets", "list"), (cloud,))]
    if name == "versions":
        assert run("build", "--edge").code == 0  # recorded in the versions store (a no-op when built already)
        return [(run("versions", "list"), ("readmission", "sha256:")), (run("versions", "show", "readmission"), ())]
    if name == "version":
        shutil.copy(directory / "mlship.yaml", directory / "bump.yaml")
        return [(run("-c", "bump.yaml", "version", "bump", "patch"), ("1.1.1",))]
    if name == "keys":
        return [(run("keys", "generate", "--dir", "keys", "--name", "ci"), (str(Path("keys") / "ci.key"),))]
    if name == "edge":
        shutil.rmtree(directory / "device", ignore_errors=True)
        return [(run("edge", "sync", "--from", "cloud", "--dir", "device"), ("readmission@stable: 1.1.0",))]
    if name == "deploy":
        return [(run("deploy", "status", "readmission"), ("no deploy runtime configured",))]
    if name == "rollout":
        return [(run("rollout", "history", "readmission"), ("mirrored to green",)),
                (run("rollout", "status", "readmission"), ())]
    if name == "config":
        return [(run("config", "show"), (f"# source: {directory / 'mlship.yaml'}",))]
    if name == "doctor":
        return [(run("doctor"), (f"onprem (file file://{directory / 'targets' / 'onprem'})",))]
    raise AssertionError(f"no scenario for `mlship {name}`: add one with realistic inputs")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_prints_nothing_cut_in_a_log(name, in_project, project):
    for result, whole in scenario(name, in_project, project[1]):
        assert result.code in (0, 2, 4), result.stderr  # 2: deploy without a runtime; 4: drift found
        readable(result, *whole)


def test_rollout_history_keeps_every_timestamp_whole_and_moves_long_cells_under_the_row(in_project):
    text = readable(run("rollout", "history", "readmission"))
    lines = text.splitlines()
    assert lines[0].split() == ["time", "user", "verb"]  # before/after do not fit in 60 columns
    stamps = [line.split()[0] for line in lines if re.match(r"\d{4}-", line)]
    assert len(stamps) >= 6 and all(re.fullmatch(r"\S+T\d\d:\d\d:\d\d\.\d{3}Z", s) for s in stamps)
    assert "    after: Healthy, 100% green" in lines
    assert max(len(line) for line in lines if re.match(r"\d{4}-", line)) <= COLUMNS


def test_a_wide_console_keeps_every_column_in_the_grid(in_project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    lines = run("rollout", "history", "readmission").stdout.splitlines()
    assert lines[0].split() == ["time", "user", "verb", "before", "after"]
    assert not any(line.startswith("    after:") for line in lines)


def test_plain_flag_and_env_give_the_same_uncoloured_tables(in_project):
    assert run("--plain", "targets", "list").stdout == run("targets", "list", "--plain").stdout
    proc = subprocess.run([sys.executable, "-m", "mlship", "rollout", "history", "readmission"], capture_output=True,
                          text=True, cwd=in_project, env={**__import__("os").environ, "MLSHIP_PLAIN": "1",
                                                          "FORCE_COLOR": "1", "COLUMNS": "60"})
    assert proc.returncode == 0 and "\x1b[" not in proc.stdout and proc.stdout.splitlines()[0].split() == [
        "time", "user", "verb"]


def test_the_missing_columns_error_lists_every_column_on_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    names = [f"{LONG}_{i}" for i in range(40)]
    data = tmp_path / "wide.csv"
    data.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    result = run("check", str(MODEL), "--sample", str(data))
    assert result.code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert all(name in result.stderr for name in names) and "…" not in result.stderr


def test_progress_without_a_terminal_is_a_line_at_a_time(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    console = Console(stdout=out, stderr=err, stdin=io.StringIO(), progress_interval=0)
    code = main(["predict", str(MODEL), "-i", str(ROOT / "examples" / "breast-cancer" / "sample.csv"),
                 "-o", str(tmp_path / "o.csv"), "--batch-size", "50"], console=console)
    assert code == 0
    lines = [line for line in err.getvalue().splitlines() if line.startswith("scoring:")]
    assert [re.match(r"scoring: (\d+)", line).group(1) for line in lines] == ["50", "100", "150", "171"]
    assert "\r" not in err.getvalue() and "\x1b[" not in err.getvalue()
    quiet = Console(stdout=io.StringIO(), stderr=io.StringIO(), stdin=io.StringIO(), quiet=True, progress_interval=0)
    assert main(["predict", str(MODEL), "-i", str(ROOT / "examples" / "breast-cancer" / "sample.csv"),
                 "-o", str(tmp_path / "q.csv")], console=quiet) == 0
    assert quiet._stderr.getvalue() == ""


def test_progress_lines_come_once_per_interval():
    said: list[str] = []
    lines = ProgressLines(said.append, "pushing to cloud", "bytes", interval=3600)
    lines.start(500_000_000)
    for _ in range(10):
        lines.advance(5_000_000)
    assert said == []  # less than an interval passed
    assert lines.line(2.0) == "pushing to cloud: 50.0/500.0 MB (10%), 25.0 MB/s, 2 s, about 18 s left"
    rows = ProgressLines(said.append, "scoring", "rows", interval=0)
    rows.start(None)
    rows.advance(1234)
    assert said and said[-1].startswith("scoring: 1,234 rows, ")


def test_a_missing_labels_column_names_every_column_of_the_sample(tmp_path):
    from tests import models

    X, _, names = models.sample_matrix()
    sample = tmp_path / "s.csv"
    sample.write_text(",".join(names) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in X[:5]))
    result = run("check", str(MODEL), "--sample", str(sample), "--labels", "outcome")
    assert result.code == 3 and "no labels column 'outcome'" in result.stderr
    assert len(names) == 30 and all(name in result.stderr for name in names)
