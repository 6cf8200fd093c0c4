"""`mlship drift`: the right columns flagged, statistics as SciPy's, windows, outputs, actions."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest
from scipy import stats

from mlship.drift.comparison import compare
from mlship.drift.detection import run_drift
from mlship.drift.settings import DriftOptions
from mlship.drift.profile import Profile
from tests.drift.logs import START, write_days, write_log
from tests.support import run


def table(path, columns):
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """Reference and current with five known changes and one unchanged column."""
    rng = np.random.default_rng(42)
    tmp = tmp_path_factory.mktemp("changed")
    n = 6000

    def data(shift: bool):
        miss = rng.normal(0, 1, n)
        if shift:
            miss[rng.random(n) < 0.25] = np.nan
        return {
            "steady": rng.normal(0, 1, n),
            "mean_shift": rng.normal(0.6 if shift else 0.0, 1, n),
            "variance": rng.normal(0, 2.0 if shift else 1.0, n),
            "category": rng.choice(["a", "b", "c"] + (["new"] if shift else []), n),
            "missing_jump": miss,
            "steady_code": rng.integers(0, 4, n),
        }

    return table(tmp / "ref.parquet", data(False)), table(tmp / "cur.parquet", data(True))


def test_exactly_the_changed_columns_are_flagged(changed):
    ref, cur = changed
    report = run_drift(DriftOptions(reference=str(ref), current=str(cur))).document()
    assert sorted(report["drifted_columns"]) == ["category", "mean_shift", "missing_jump", "variance"]
    by_name = {c["name"]: c for c in report["columns"]}
    assert "new categories" in " ".join(by_name["category"]["reasons"]) or by_name["category"]["stats"]["js"] >= 0.1
    assert by_name["category"]["stats"]["unseen_share"] == pytest.approx(0.25, abs=0.02)
    assert by_name["missing_jump"]["missing"]["current"] == pytest.approx(0.25, abs=0.02)
    assert by_name["steady_code"]["kind"] == "categorical" and not by_name["steady_code"]["drifted"]
    assert report["dataset_drift"] is False or report["drifted_share"] >= 0.5


def test_statistics_equal_scipys_on_small_inputs(tmp_path):
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 1.2, 250)
    ca, cb = rng.choice(["x", "y", "z"], 300, p=[0.5, 0.3, 0.2]), rng.choice(["x", "y", "z"], 250, p=[0.3, 0.3, 0.4])
    ref, cur = Profile(), Profile()
    ref.add_frame({"num": a, "cat": ca.astype(object)}, 300)
    cur.add_frame({"num": b, "cat": cb.astype(object)}, 250)
    result = {c.name: c for c in compare(ref, cur, DriftOptions(reference="r", current="c", min_rows=10))}
    ks = stats.ks_2samp(a, b)
    assert result["num"].stats.ks_d == pytest.approx(ks.statistic, rel=1e-12)
    assert result["num"].stats.ks_p == pytest.approx(ks.pvalue, rel=1e-9)
    assert result["num"].stats.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    table_ = np.array([[np.sum(ca == k) for k in "xyz"], [np.sum(cb == k) for k in "xyz"]])
    chi2, p = stats.chi2_contingency(table_, correction=False)[:2]
    assert result["cat"].stats.chi2 == pytest.approx(chi2, rel=1e-12)
    assert result["cat"].stats.chi2_p == pytest.approx(p, rel=1e-9)


def test_sketched_statistics_stay_close_to_exact_ones():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 50_000), rng.normal(0.2, 1, 50_000)
    ref, cur = Profile(), Profile()
    ref.add_frame({"x": a}, len(a))
    cur.add_frame({"x": b}, len(b))
    s = compare(ref, cur, DriftOptions(reference="r", current="c"))[0].stats
    assert s.ks_d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=0.002)
    assert s.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=0.01)


def test_no_drift_is_rarely_flagged_at_the_default_window_size():
    rng = np.random.default_rng(11)
    options = DriftOptions(reference="r", current="c")
    window = options.min_rows * 5  # 1000 rows, a typical window
    flags = judged = dataset = 0
    for _ in range(60):
        ref, cur = Profile(), Profile()
        ref.add_frame({f"f{i}": rng.normal(0, 1, 5000) for i in range(5)} | {"c": rng.choice(["a", "b"], 5000)}, 5000)
        cur.add_frame({f"f{i}": rng.normal(0, 1, window) for i in range(5)} | {"c": rng.choice(["a", "b"], window)},
                      window)
        result = compare(ref, cur, options)
        flags += sum(c.drifted for c in result)
        judged += len(result)
        dataset += sum(c.drifted for c in result) / len(result) >= 0.5
    assert flags / judged <= 0.05 and dataset / 60 <= 0.05


def test_merged_chunk_profiles_give_the_single_pass_report(tmp_path):
    rng = np.random.default_rng(5)
    parts = [{"x": rng.normal(0, 1, 3000), "y": rng.exponential(2, 3000), "k": rng.choice(["a", "b", "c"], 3000)}
             for _ in range(3)]
    whole = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    table(tmp_path / "whole.parquet", whole)
    for i, p in enumerate(parts):
        table(tmp_path / f"part{i}.parquet", p)
        assert run("profile", str(tmp_path / f"part{i}.parquet"), "-o", str(tmp_path / f"part{i}.json")).code == 0
    assert run("profile", *(str(tmp_path / f"part{i}.json") for i in range(3)), "-o", str(tmp_path / "merged.json")).code == 0
    assert run("profile", str(tmp_path / "whole.parquet"), "-o", str(tmp_path / "single.json")).code == 0
    cur = table(tmp_path / "cur.parquet", {"x": rng.normal(0.3, 1, 4000), "y": rng.exponential(2, 4000),
                                           "k": rng.choice(["a", "b", "c"], 4000)})
    reports = [run_drift(DriftOptions(reference=str(tmp_path / name), current=str(cur))).document()
               for name in ("merged.json", "single.json", "whole.parquet")]
    for other in reports[1:]:
        for a, b in zip(reports[0]["columns"], other["columns"]):
            assert a["drifted"] == b["drifted"]
            for key, value in a["stats"].items():
                assert value == pytest.approx(b["stats"][key], rel=1e-9, abs=1e-12), (a["name"], key)
    assert reports[0]["drifted_columns"] == ["x"]


def test_time_windows_find_drift_injected_in_the_last_days(tmp_path):
    rng = np.random.default_rng(9)
    days = [(800, None)] * 5 + [(800, {"age": 12.0, "length_of_stay": 0.8})] * 2
    ref, logs = write_days(tmp_path, rng, days, reference_rows=4000)
    write_log(logs / "day7.jsonl", rng, START + timedelta(days=7), 1, 50)  # a thin last window
    result = run("drift", "-r", str(ref), "-c", str(logs), "--window", "1d", "--json-out", "-", "--fail-on", "window")
    assert result.code == 4
    report = json.loads(result.stdout)
    flags = [w["dataset_drift"] for w in report["windows"]]
    assert flags[:5] == [False] * 5 and flags[5:7] == [True, True]
    assert report["windows"][7]["insufficient"] is True and flags[7] is None
    assert report["windows"][5]["start"] == "2026-11-06T00:00:00Z"
    assert {"age", "length_of_stay"} <= set(report["windows"][6]["drifted_columns"])


def test_operations_by_version_and_variant(tmp_path):
    rng = np.random.default_rng(2)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "stable.jsonl", rng, START, 2, 1000, version="1.0.0", variant="stable")
    write_log(logs / "canary.jsonl", rng, START, 2, 500, version="1.1.0", variant="canary", error_rate=0.1)
    report = run_drift(DriftOptions(reference=str(logs / "stable.jsonl"), current=str(logs))).document()
    groups = {(g["version"], g["variant"]): g for g in report["operations"]["by_version_variant"]}
    assert groups[("1.0.0", "stable")]["requests"] == 1000 and groups[("1.0.0", "stable")]["error_rate"] == 0
    assert groups[("1.1.0", "canary")]["error_rate"] == pytest.approx(0.1, abs=0.04)
    assert 0 < groups[("1.1.0", "canary")]["latency_ms"]["p50"] < groups[("1.1.0", "canary")]["latency_ms"]["p99"]


def test_labels_joined_by_request_id_give_the_hand_checked_f1(tmp_path):
    log = tmp_path / "log.jsonl"
    predictions = [1, 1, 1, 0, 0, 1, 0, 1, 0, 0]
    truth = [1, 0, 1, 0, 1, 1, 0, 1, 0, 0]  # TP=4 FP=1 FN=1 TN=4 -> precision 0.8, recall 0.8, F1 0.8
    with log.open("w") as fh:
        for i, p in enumerate(predictions):
            fh.write(json.dumps({"ts": "2026-11-01T00:00:00.000Z", "request_id": f"r{i}", "model": "m", "version": "1",
                                 "inputs": {"x": float(i)}, "outputs": {"label": p, "probabilities": [0.4, 0.6]},
                                 "latency_ms": 1.0, "status": 200}) + "\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\n" + "".join(f"r{i},{t}\n" for i, t in reversed(list(enumerate(truth)))))
    report = run_drift(DriftOptions(reference=str(log), current=str(log), labels=labels, min_rows=5)).document()
    perf = report["performance"]["current"]
    assert perf["task"] == "classification" and perf["rows"] == 10
    assert perf["f1"] == pytest.approx(0.8) and perf["accuracy"] == pytest.approx(0.8)
    assert perf["precision"] == pytest.approx(0.8) and perf["recall"] == pytest.approx(0.8)


def test_malformed_lines_are_counted_or_fatal_with_strict(tmp_path):
    rng = np.random.default_rng(1)
    log = tmp_path / "log.jsonl"
    write_log(log, rng, START, 1, 400)
    lines = log.read_text().splitlines()
    lines.insert(10, "{not json")
    lines.insert(20, "[1, 2]")
    log.write_text("\n".join(lines) + "\n")
    result = run("drift", "-r", str(log), "-c", str(log), "--json-out", "-")
    assert result.code == 0, result.stderr
    read = json.loads(result.stdout)["read"]
    assert read["bad_lines"] == 4  # both lines, read once as reference and once as current
    assert read["examples"][0].startswith(f"{log}:11:")
    strict = run("drift", "-r", str(log), "-c", str(log), "--strict")
    assert strict.code == 3 and f"{log}:11: malformed record" in strict.stderr


@pytest.mark.parametrize("args,code,message", [
    (["-c", "{missing}"], 3, "not found"),
    (["-c", "{empty}"], 3, "no rows"),
    (["-c", "{ref}", "--window", "fortnight"], 2, "--window 'fortnight'"),
    (["-c", "{ref}", "--fail-on", "sometimes"], 2, "--fail-on 'sometimes'"),
])
def test_bad_input(tmp_path, changed, args, code, message):
    ref, _ = changed
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = [a.format(missing=tmp_path / "nope.parquet", empty=empty, ref=ref) for a in args]
    result = run("drift", "-r", str(ref), *args)
    assert result.code == code and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_reports_are_written_and_exit_codes_drive_ci(tmp_path, changed):
    ref, cur = changed
    marker = tmp_path / "retrained"
    out = {"json": tmp_path / "r.json", "html": tmp_path / "r.html", "md": tmp_path / "r.md"}
    result = run("drift", "-r", str(ref), "-c", str(cur), "--json-out", str(out["json"]), "--html", str(out["html"]),
                 "--markdown", str(out["md"]), "--fail-on", "any", "--on-drift", f"cat $MLSHIP_DRIFT_REPORT > {marker}")
    assert result.code == 4
    assert json.loads(marker.read_text())["schema"] == "mlship.drift/v1"
    assert "| `mean_shift` | numeric | **drift** |" in out["md"].read_text()
    assert out["html"].read_text().count("<svg") >= 6
    same = run("drift", "-r", str(ref), "-c", str(ref))
    assert same.code == 0 and "no dataset drift" in same.stdout
    assert run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "column:steady").code == 0
    assert run("drift", "-r", str(ref), "-c", str(cur), "--fail-on", "column:variance").code == 4


def test_config_overrides_ignore_and_threshold(tmp_path, changed):
    ref, cur = changed
    (tmp_path / "mlship.yaml").write_text(
        f"monitoring:\n  reference: {ref}\n  columns:\n    variance: {{ignore: true}}\n"
        "    mean_shift: {threshold: 5.0}\n")
    result = run("-c", str(tmp_path / "mlship.yaml"), "drift", "-c", str(cur), "--json-out", "-")
    report = json.loads(result.stdout)
    assert "variance" not in report["drifted_columns"] and "mean_shift" not in report["drifted_columns"]


def test_webhook_posts_the_summary_and_a_failing_one_exits_7(tmp_path, changed, http_upstream_factory):
    ref, cur = changed
    ok = http_upstream_factory(b"{}", status=200, content_type="application/json")
    result = run("drift", "-r", str(ref), "-c", str(cur), "--webhook", ok.url + "/hook", "--fail-on", "never")
    assert result.code == 0, result.stderr
    assert ok.requests == ["/hook"]
    failing = http_upstream_factory(b"down", status=503)
    result = run("drift", "-r", str(ref), "-c", str(cur), "--webhook", failing.url + "/hook", "--fail-on",
                 "never")
    assert result.code == 7 and "after 4 attempts: HTTP 503" in result.stderr
    assert len(failing.requests) == 4


def test_parquet_log_with_struct_inputs_is_flattened(tmp_path):
    rng = np.random.default_rng(1)
    log = tmp_path / "log.jsonl"
    write_log(log, rng, START, 2, 500)
    pq.write_table(pajson.read_json(log), tmp_path / "log.parquet")
    report = run_drift(DriftOptions(reference=str(log), current=str(tmp_path / "log.parquet"))).document()
    names = {c["name"] for c in report["columns"] if not c.get("insufficient")}
    assert {"age", "group", "outputs.label", "outputs.probabilities_1"} <= names
    assert report["drifted_columns"] == []


def test_booleans_compare_across_formats_and_declared_categorical_codes(tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    flags = rng.random(n) < 0.3
    codes = rng.integers(10000, 10040, n)
    (tmp_path / "ref.csv").write_text("flag,zip\n" + "".join(f"{f},{z}\n" for f, z in zip(flags, codes)))
    (tmp_path / "cur.jsonl").write_text("".join(json.dumps({"flag": bool(f), "zip": int(z)}) + "\n"
                                                for f, z in zip(flags[::-1], codes[::-1])))
    options = DriftOptions(reference=str(tmp_path / "ref.csv"), current=str(tmp_path / "cur.jsonl"),
                           columns={"zip": {"kind": "categorical"}})
    report = run_drift(options).document()
    by = {c["name"]: c for c in report["columns"]}
    assert by["flag"]["kind"] == "categorical" and not by["flag"]["drifted"]
    assert by["zip"]["kind"] == "categorical" and "js" in by["zip"]["stats"]


def test_labels_csv_with_numeric_ids_and_a_bad_outputs_line(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"ts": "2026-11-01T00:00:00.000Z", "request_id": str(1000 + i), "model": "m", "version": "1",
                         "inputs": {"x": float(i)}, "outputs": {"label": i % 2}, "latency_ms": 1, "status": 200})
             for i in range(10)]
    lines.insert(3, json.dumps({"ts": "t", "request_id": "z", "model": "m", "version": "1", "inputs": {},
                                "outputs": [1, 2], "latency_ms": 1}))
    log.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\n" + "".join(f"{1000 + i},{i % 2}\n" for i in range(10)))
    report = run_drift(DriftOptions(reference=str(log), current=str(log), labels=labels, min_rows=5)).document()
    assert report["performance"]["current"]["accuracy"] == 1.0
    assert report["read"]["bad_lines"] == 2 and ":4:" in report["read"]["examples"][0]


def test_records_without_time_join_no_window_and_bad_windows_exit_2(tmp_path):
    rng = np.random.default_rng(3)
    log = tmp_path / "log.jsonl"
    write_log(log, rng, START, 48, 1000)
    with log.open("a") as fh:
        fh.write(json.dumps({"request_id": "no-ts", "model": "m", "version": "1", "inputs": {"age": 50.0},
                             "outputs": {}, "latency_ms": 1, "status": 200}) + "\n")
    report = json.loads(run("drift", "-r", str(log), "-c", str(log), "--window", "1d", "--json-out", "-").stdout)
    assert [w["rows"] for w in report["windows"]] == [500, 500] and report["current"]["rows"] == 1001
    for bad in ("0h", "0rows", "0.5rows"):
        assert run("drift", "-r", str(log), "-c", str(log), "--window", bad).code == 2
    assert run("drift", "-r", str(log), "-c", str(log), "--drift-share", "1.5").code == 2


def test_one_global_json_works_anywhere_on_the_drift_line(tmp_path, changed):
    ref, cur = changed
    after = run("drift", "-r", str(ref), "-c", str(cur), "--json")
    before = run("drift", "--json", "-c", str(cur), "-r", str(ref))
    assert after.code == before.code == 4, after.stderr + before.stderr  # drift found
    assert json.loads(after.stdout)["schema"] == json.loads(before.stdout)["schema"] == "mlship.drift/v1"
    assert json.loads(before.stdout)["drifted_columns"] == json.loads(after.stdout)["drifted_columns"]
    both = run("drift", "-r", str(ref), "-c", str(cur), "--json-out", str(tmp_path / "r.json"), "--json")
    assert json.loads(both.stdout) == json.loads((tmp_path / "r.json").read_text())


@pytest.mark.parametrize("old", [["--json", "{out}"], ["--json={out}"], ["--json", "-"]])
def test_the_old_json_file_form_is_refused_naming_json_out(tmp_path, changed, old):
    ref, cur = changed
    out = tmp_path / "r.json"
    result = run("drift", "-r", str(ref), "-c", str(cur), *(a.format(out=out) for a in old))
    assert result.code == 2
    assert "--json takes no value" in result.stderr and "--json-out" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()


def test_a_stray_drift_argument_is_a_usage_error(changed):
    ref, cur = changed
    result = run("drift", "-r", str(ref), "-c", str(cur), "extra")
    assert result.code == 2 and "drift takes no arguments, got 'extra'" in result.stderr
