"""Attacks on `mlship drift` and `mlship profile`: type changes, webhooks, saved profiles.

Every case drives the real CLI (tests.support.run); webhooks go to a real
http.server on 127.0.0.1 that records what it received.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import run

N = 400


# -- data ----------------------------------------------------------------------------


def _csv(path: Path, x: list[str], seed: int) -> Path:
    """x as given; y the same in every file (seed unused for y), so only x can drift."""
    y = np.random.default_rng(11).normal(5, 1, len(x))
    path.write_text("x,y\n" + "".join(f"{a},{b:.4f}\n" for a, b in zip(x, y)))
    return path


def _numbers(seed: int, n: int = N) -> list[str]:
    return [f"{v:.4f}" for v in np.random.default_rng(seed).normal(0, 1, n)]


def _with_text(seed: int, every: int, text: str = "n/a") -> list[str]:
    return [text if i % every == 0 else v for i, v in enumerate(_numbers(seed))]


def _log(path: Path, x_values: list[object], seed: int) -> Path:
    rng = np.random.default_rng(19)  # y the same in every log: only x can drift
    with path.open("w") as fh:
        for i, x in enumerate(x_values):
            fh.write(json.dumps({"ts": f"2026-11-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z", "request_id": f"r{i}",
                                 "model": "m", "version": "1", "variant": "stable",
                                 "inputs": {"x": x, "y": float(rng.normal(5, 1))}, "outputs": {"label": i % 2},
                                 "latency_ms": 1.0, "status": 200, "error": None}) + "\n")
    return path


def _type_change_cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (reference args, current args): x changes type, y does not."""
    ref_csv = _csv(tmp / "ref.csv", _numbers(1), 11)
    floats = [float(v) for v in _numbers(2)]
    ref_pq = tmp / "ref.parquet"
    pq.write_table(pa.table({"x": floats, "y": np.random.default_rng(11).normal(5, 1, N)}), ref_pq)
    cur_pq = tmp / "cur_text.parquet"
    pq.write_table(pa.table({"x": ["n/a" if i % 7 == 0 else v for i, v in enumerate(_numbers(3))],
                             "y": np.random.default_rng(11).normal(5, 1, N)}), cur_pq)
    assert run("profile", str(ref_csv), "-o", str(tmp / "ref_profile.json")).code == 0
    return {
        "csv-some-na": ([str(ref_csv)], [_csv(tmp / "some.csv", _with_text(4, 10), 14)]),
        "csv-all-na": ([str(ref_csv)], [_csv(tmp / "all.csv", ["n/a"] * N, 15)]),
        "csv-one-na": ([str(ref_csv)], [_csv(tmp / "one.csv", _with_text(5, N + 1), 16)]),
        "csv-markup-text": ([str(ref_csv)], [_csv(tmp / "markup.csv", _with_text(6, 5, "[/x]"), 17)]),
        "csv-pipe-text": ([str(ref_csv)], [_csv(tmp / "pipe.csv", _with_text(6, 5, "a|b|<i>"), 17)]),
        "profile-reference": ([str(tmp / "ref_profile.json")], [_csv(tmp / "prof_cur.csv", _with_text(7, 4), 18)]),
        "log-strings": ([str(_log(tmp / "ref.jsonl", [float(v) for v in _numbers(8)], 19))],
                        [_log(tmp / "cur.jsonl", ["n/a" if i % 3 == 0 else float(v) for i, v in enumerate(_numbers(9))],
                              20)]),
        "log-objects": ([str(tmp / "ref.jsonl")],
                        [_log(tmp / "obj.jsonl", [{"v": 1} if i % 6 == 0 else float(v) for i, v in
                                                  enumerate(_numbers(10))], 21)]),
        "parquet-text": ([str(ref_pq)], [cur_pq]),
        "text-to-numbers": ([str(_csv(tmp / "ref_text.csv", [f"code-{i % 50}" for i in range(N)], 22))],
                            [_csv(tmp / "cur_numbers.csv", _numbers(23), 23)]),
        "windows": ([str(ref_csv), "--window", "200rows"], [_csv(tmp / "win.csv", _with_text(24, 2), 24)]),
        "few-rows": ([str(ref_csv), "--min-rows", "50"],
                     [_csv(tmp / "few.csv", ["n/a"] * 10 + [""] * (N - 10), 25)]),
    }


@pytest.fixture(scope="module")
def type_cases(tmp_path_factory):
    return _type_change_cases(tmp_path_factory.mktemp("types"))


TYPE_CASES = ["csv-some-na", "csv-all-na", "csv-one-na", "csv-markup-text", "csv-pipe-text", "profile-reference",
              "log-strings", "log-objects", "parquet-text", "text-to-numbers", "windows", "few-rows"]


@pytest.mark.parametrize("case", TYPE_CASES)
def test_a_type_change_is_a_drift_finding_in_every_output(tmp_path, type_cases, case):
    """A column whose values change type drifts (exit 4 with --fail-on column:x) and says so
    in the terminal, JSON, HTML and Markdown reports; the column beside it is judged normally."""
    ref_args, cur = type_cases[case]
    out = {"json": tmp_path / "r.json", "html": tmp_path / "r.html", "md": tmp_path / "r.md"}
    result = run("drift", "-r", *ref_args, "-c", str(cur[0]), "--json-out", str(out["json"]), "--html",
                 str(out["html"]), "--markdown", str(out["md"]), "--fail-on", "column:x")
    assert result.code == 4, result.stderr
    assert "internal error" not in result.stderr and "drift found (column:x)" in result.stderr
    report = json.loads(out["json"].read_text())
    by_name = {c["name"]: c for c in report["columns"]}
    x = by_name["x"]
    assert x["drifted"] and x["type"]["changed"] and "x" in report["drifted_columns"]
    assert any(r.startswith("type changed") for r in x["reasons"]), x["reasons"]
    assert not by_name["y"]["drifted"] and not by_name["y"]["type"]["changed"]
    assert "type changed" in " ".join(result.stdout.split())
    assert "type changed" in out["md"].read_text() and "type changed" in out["html"].read_text()
    (row,) = [line for line in out["md"].read_text().splitlines() if line.startswith("| `x` |")]
    assert row.replace("\\|", "").count("|") == 8  # seven cells: text from the data stays inside its cell
    assert "<i>" not in out["html"].read_text()
    if case == "windows":
        assert report["windows"] and all("x" in w["drifted_columns"] for w in report["windows"])


def test_a_type_change_counts_its_text_values(type_cases, tmp_path):
    """The finding says how many values changed type and shows an example of them."""
    ref_args, cur = type_cases["csv-some-na"]
    result = run("drift", "-r", *ref_args, "-c", str(cur[0]), "--json-out", "-")
    assert result.code == 0 or result.code == 4, result.stderr
    x = {c["name"]: c for c in json.loads(result.stdout)["columns"]}["x"]
    assert x["type"]["current_values"] == {"numbers": N - N // 10, "text": N // 10}
    assert x["type"]["examples"] == ["n/a"]
    assert x["kind"] == "numeric" and "wasserstein_norm" in x["stats"]  # the numbers are still compared
    assert "40 of 400 values are text" in " ".join(x["reasons"])


# -- webhooks -----------------------------------------------------------------------


class Receiver:
    """A real HTTP server on 127.0.0.1 recording every request it is sent.

    Paths choose the answer: /status/NNN answers NNN (3xx with Location /landed),
    /landed and anything else answer 200.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    receiver.requests.append({"method": self.command, "path": self.path, "body": body,
                                              "headers": dict(self.headers)})
                code = 200
                if self.path.startswith("/status/"):
                    code = int(self.path.split("/")[2])
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", self.headers.get("X-Redirect-To") or "/landed?sig=LOCATIONSECRET")
                self.send_header("Content-Length", "0" if code == 204 else "2")
                self.end_headers()
                if code != 204:
                    self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    return _csv(tmp / "ref.csv", _numbers(30), 31), _csv(tmp / "cur.csv", _numbers(30), 33)  # no drift


def _drift(small, *args: str):
    ref, cur = small
    return run("drift", "-r", str(ref), "-c", str(cur), *args)


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_a_2xx_answer_is_delivery(receiver, small, code):
    result = _drift(small, "--webhook", f"{receiver.url}/status/{code}")
    assert result.code == 0, result.stderr
    (request,) = receiver.requests
    assert request["method"] == "POST" and request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"])["schema"] == "mlship.drift/v1"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_delivery_and_is_not_followed(tmp_path, receiver, small, code):
    """No redirect is followed: a POST never becomes an empty GET, and the body is never re-sent
    to wherever the receiver points; the user is told where it pointed (redacted)."""
    report = tmp_path / "r.json"
    result = _drift(small, "--webhook", f"{receiver.url}/status/{code}", "--json-out", str(report))
    assert result.code == 7, result.stderr
    assert f"answered {code} (a redirect to {receiver.url}/landed?…)" in result.stderr
    assert "LOCATIONSECRET" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1
    assert [(r["method"], r["path"]) for r in receiver.requests] == [("POST", f"/status/{code}")]
    assert json.loads(receiver.requests[0]["body"])["schema"] == "mlship.drift/v1"
    assert json.loads(report.read_text())["schema"] == "mlship.drift/v1"  # the report was still written


@pytest.mark.parametrize("code,attempts", [(400, 1), (404, 1), (410, 1), (500, 4)])
def test_an_error_answer_is_not_delivery(receiver, small, code, attempts):
    result = _drift(small, "--webhook", f"{receiver.url}/status/{code}")
    assert result.code == 7 and f"failed after {attempts} attempt" in result.stderr and f"HTTP {code}" in result.stderr
    assert len(receiver.requests) == attempts and all(r["method"] == "POST" for r in receiver.requests)


SECRETS = ("hunter2", "T0SECRET", "B0SECRET", "XXSECRET", "tok=QSECRET", "FRAGSECRET")


@pytest.mark.parametrize("json_mode", [False, True])
def test_webhook_secrets_are_never_printed(receiver, small, json_mode):
    """Userinfo, query, fragment and path tokens (Slack's /services/T/B/X) stay out of errors,
    the --json error document and the report; the receiver still gets the credentials."""
    host = receiver.url.removeprefix("http://")
    url = f"http://bot:hunter2@{host}/status/403/T0SECRET/B0SECRET/XXSECRET?tok=QSECRET#FRAGSECRET"
    args = ("--json", "drift") if json_mode else ("drift",)
    ref, cur = small
    result = run(*args, "-r", str(ref), "-c", str(cur), "--webhook", url)
    assert result.code == 7
    shown = result.stdout + result.stderr
    assert not [s for s in SECRETS if s in shown], shown
    assert f"webhook http://***@{host}/status/…?…#… failed after 1 attempt: HTTP 403" in result.stderr
    assert f"warning: --webhook http://***@{host}/status/…?…#… sends its credentials unencrypted" in result.stderr
    (request,) = receiver.requests
    assert request["path"] == "/status/403/T0SECRET/B0SECRET/XXSECRET?tok=QSECRET"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"bot:hunter2").decode()
    if json_mode:
        assert json.loads(result.stdout)["schema"] == "mlship.drift/v1"


def test_webhook_secrets_stay_out_of_connection_errors(small):
    """Nothing listens: the connection error names the redacted URL only (4 attempts)."""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _drift(small, "--webhook", f"http://u:hunter2@127.0.0.1:{port}/hooks/XXSECRET?tok=QSECRET")
    assert result.code == 7 and "after 4 attempts" in result.stderr
    assert f"http://***@127.0.0.1:{port}/hooks/…" in result.stderr
    assert not [s for s in SECRETS if s in result.stderr + result.stdout]


BAD_WEBHOOKS = [
    "not a url", "", "file:///tmp/x", "ftp://127.0.0.1/x", "data:,hello", "javascript:alert(1)", "http://",
    "https://:443/x", "http:///path", "http://127.0.0.1:99999/x", "http://127.0.0.1:port/x", "//127.0.0.1/x",
    "127.0.0.1:8000/hook", "http://exa mple.com/x", "http://127.0.0.1/a\r\nX-Injected: 1", "http://127.0.0.1/\x00",
    "gopher://127.0.0.1:70/_x", "http://[::1/x", "hxxp://hooks.example/services/T/B/XXSECRET",
]


@pytest.mark.parametrize("url", BAD_WEBHOOKS)
def test_a_bad_webhook_url_is_a_usage_error_before_any_work(tmp_path, url):
    """Exit 2 with one line before reading anything: the current data does not even exist,
    and no report is written; a file:// URL's file is not touched; no secret is echoed."""
    report = tmp_path / "r.json"
    target = Path("/tmp/x")
    before = target.stat().st_mtime_ns if target.exists() else None
    result = run("drift", "-r", str(tmp_path / "nope.csv"), "-c", str(tmp_path / "nope.csv"), "--webhook", url,
                 "--json-out", str(report))
    assert result.code == 2, result.stderr
    assert result.stderr.startswith("error: --webhook") and result.stderr.count("\n") == 1
    assert "XXSECRET" not in result.stderr and "not found" not in result.stderr
    assert not report.exists() and not list(tmp_path.iterdir())
    assert (target.stat().st_mtime_ns if target.exists() else None) == before


@pytest.mark.parametrize("url,shown", [
    ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/…"),
    ("http://user:pw@127.0.0.1:8080/hook?token=abc", "http://***@127.0.0.1:8080/hook?…"),
    ("https://example.com", "https://example.com"),
    ("https://example.com/", "https://example.com/"),
    ("https://example.com/hook", "https://example.com/hook"),
    ("https://example.com/hook/", "https://example.com/hook/…"),
    ("https://example.com/hook#frag", "https://example.com/hook#…"),
    ("HTTPS://Example.COM:8443/a/b", "https://example.com:8443/a/…"),
    ("http://[::1]:9000/x/y", "http://[::1]:9000/x/…"),
    ("http://tok@example.com/", "http://***@example.com/"),
    ("not a url", "(not a URL)"),
    ("file:///etc/passwd", "file://…"),
    ("http://127.0.0.1:99999/x/SECRET", "http://127.0.0.1/x/…"),
    ("mailto:someone@example.com", "mailto:…"),
])
def test_redact_url(url, shown):
    from mlship.urls import redact_url

    assert redact_url(url) == shown


# -- saved profiles -----------------------------------------------------------------


@pytest.fixture(scope="module")
def profile_doc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    small_csv = _csv(tmp / "small.csv", _numbers(40, 300), 41)
    big = tmp / "big.parquet"  # over the exact cap: the numeric sketch has buckets
    pq.write_table(pa.table({"x": np.random.default_rng(42).normal(0, 1, 3000), "y": ["a", "b", "c"] * 1000}), big)
    docs = {}
    for name, source in (("exact", small_csv), ("buckets", big)):
        assert run("profile", str(source), "-o", str(tmp / f"{name}.json")).code == 0
        docs[name] = json.loads((tmp / f"{name}.json").read_text())
    return docs


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a profile document (list items stop the walk)."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    return out


def _broken_profiles(docs: dict[str, dict]) -> list[tuple[str, object]]:
    """(description, document): every key removed, every value mistyped, bad numbers."""
    cases: list[tuple[str, object]] = []
    for base_name, base in docs.items():
        for path in _paths(base):
            if path == ("schema",) or (len(path) > 2 and path[-1] in ("psi_edges", "kind")):
                continue  # no schema: not a profile at all (a data file); psi_edges and kind are optional
            if len(path) == 2 and path[0] == "columns":
                continue  # a column name: removing it leaves a valid profile
            if len(path) > 3 and path[2] == "categories" or len(path) > 3 and path[2] == "codes":
                continue  # one category or code is data, not structure
            if len(path) > 2 and path[2] == "signals":
                continue  # optional (older profiles lack it), its flags data: the cases below break it
            doc = copy.deepcopy(base)
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
            cases.append((f"{base_name}: no {'.'.join(path)}", doc))
            for bad in ("x", [], {}, None, -1, True, 1.5, "NaN") if path[-1] not in ("min", "max") else ("x", []):
                if bad is None and path[-1] in ("codes",) or bad == -1 and path[-1] in ("mean", "min", "max"):
                    continue  # codes may be null; a negative mean is fine
                if bad == 1.5 and path[-1] in ("mean", "m2"):
                    continue
                doc = copy.deepcopy(base)
                parent = doc
                for key in path[:-1]:
                    parent = parent[key]
                if parent[path[-1]] == bad or bad == {} and (isinstance(parent[path[-1]], dict) or path[-1] == "codes"):
                    continue  # the same value, or an empty mapping where a mapping belongs: valid
                parent[path[-1]] = bad
                cases.append((f"{base_name}: {'.'.join(path)} = {bad!r}", doc))
    exact = docs["exact"]
    for what, change in [
        ("m2 < 0", lambda d: d["columns"]["x"]["numeric"].update(m2=-1.0)),
        ("mean NaN", lambda d: d["columns"]["x"]["numeric"].update(mean=math.nan)),
        ("exact has text", lambda d: d["columns"]["x"]["numeric"]["exact"].__setitem__(0, "n/a")),
        ("exact has Infinity", lambda d: d["columns"]["x"]["numeric"]["exact"].__setitem__(0, math.inf)),
        ("exact shorter than n", lambda d: d["columns"]["x"]["numeric"]["exact"].pop()),
        ("n = 0 with min", lambda d: d["columns"]["x"]["numeric"].update(n=0)),
        ("category count text", lambda d: d["columns"]["y"]["codes"].__setitem__("1", "many")
         if d["columns"]["y"]["codes"] else d["columns"]["y"]["categories"].__setitem__("a", "many")),
        ("psi_edges unsorted", lambda d: d["columns"]["x"].update(psi_edges=[2.0, 1.0])),
        ("psi_edges text", lambda d: d["columns"]["x"].update(psi_edges=["a"])),
        ("columns a list", lambda d: d.update(columns=[])),
        ("a column is a list", lambda d: d["columns"].update(x=[1, 2])),
        ("rows negative", lambda d: d.update(rows=-5)),
        ("rows huge", lambda d: d.update(rows=10 ** 30)),
        ("signals a list", lambda d: d["columns"]["x"].update(signals=[])),
        ("signals without integral", lambda d: d["columns"]["x"]["signals"].pop("integral")),
        ("signals.integral text", lambda d: d["columns"]["x"]["signals"].update(integral="yes")),
        ("signals.first text", lambda d: d["columns"]["x"]["signals"].update(first="0")),
        ("signals.distinct a hash of 2**64", lambda d: d["columns"]["x"]["signals"].update(distinct=[2 ** 64])),
        ("signals.distinct negative", lambda d: d["columns"]["x"]["signals"].update(distinct=[-1])),
        ("signals.distinct text", lambda d: d["columns"]["x"]["signals"].update(distinct=["a"])),
        ("signals.distinct too long", lambda d: d["columns"]["x"]["signals"].update(distinct=list(range(10 ** 4)))),
    ]:
        doc = copy.deepcopy(exact)
        change(doc)
        cases.append((f"exact: {what}", doc))
    buckets = docs["buckets"]
    for what, change in [
        ("bucket pair of three", lambda d: d["columns"]["x"]["numeric"]["buckets"]["pos"].__setitem__(0, [1, 2, 3])),
        ("bucket key huge", lambda d: d["columns"]["x"]["numeric"]["buckets"]["pos"].__setitem__(0, [10 ** 20, 1])),
        ("bucket count negative", lambda d: d["columns"]["x"]["numeric"]["buckets"]["neg"].__setitem__(0, [1, -3])),
        ("bucket counts do not add up", lambda d: d["columns"]["x"]["numeric"]["buckets"].update(zero=7)),
        ("buckets and exact", lambda d: d["columns"]["x"]["numeric"].update(exact=[1.0])),
    ]:
        doc = copy.deepcopy(buckets)
        change(doc)
        cases.append((f"buckets: {what}", doc))
    cases += [("a list", [{"schema": "mlship.profile/v1"}]), ("a string", "mlship.profile/v1"),
              ("truncated", None)]
    return cases


def test_every_broken_profile_is_refused_with_exit_3(tmp_path, profile_doc, small):
    """Each missing key and each mistyped value of a saved profile: exit 3, one line naming the
    file and the field, no traceback, no report written; merging it with `mlship profile` too."""
    cases = _broken_profiles(profile_doc)
    assert len(cases) > 150
    _, cur = small
    failures = []
    for i, (what, doc) in enumerate(cases):
        path = tmp_path / f"p{i}.json"
        if doc is None:
            path.write_text(json.dumps(profile_doc["exact"])[:300])
        else:
            path.write_text(json.dumps(doc))
        report = tmp_path / f"r{i}.json"
        drift = run("drift", "-r", str(path), "-c", str(cur), "--json-out", str(report))
        merged = tmp_path / f"m{i}.json"
        merge = run("profile", str(path), str(path), "-o", str(merged))
        for result in (drift, merge):
            if not (result.code == 3 and result.stderr.count("\n") == 1 and str(path) in result.stderr
                    and "internal error" not in result.stderr and "Traceback" not in result.stderr):
                failures.append((what, result.code, result.stderr.strip()))
        if report.exists() or merged.exists():
            failures.append((what, "wrote a file"))
    assert not failures, f"{len(failures)} of {2 * len(cases)}: {sorted({f[0] for f in failures})}"


def test_the_profile_error_names_the_field(tmp_path, profile_doc, small):
    doc = copy.deepcopy(profile_doc["exact"])
    del doc["columns"]["x"]["numeric"]["m2"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    result = run("drift", "-r", str(path), "-c", str(small[1]))
    assert result.code == 3 and f"{path}: not a valid mlship.profile/v1 profile: columns.x.numeric.m2" in result.stderr


def test_valid_profiles_still_load_and_merge(tmp_path, profile_doc, small):
    for name, doc in profile_doc.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        assert run("profile", str(path), str(path), "-o", str(tmp_path / f"{name}2.json")).code == 0
    result = run("drift", "-r", str(tmp_path / "exact.json"), "-c", str(small[1]), "--fail-on", "never")
    assert result.code == 0, result.stderr


# -- hostile names in the data-quality and column-detail sections ----------------------------

HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "a'b\"c", "[red]x[/red]", "p|q", "e\x1b[31mf", "ü" * 300]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_column_and_category_names_stay_text_in_every_section(tmp_path, name):
    """A column name and a category (from the data) reach the quality table, the column details,
    anchors, rotated axis labels and Markdown cells as text, never as markup."""
    rng = np.random.default_rng(3)
    with (tmp_path / "ref.jsonl").open("w") as fh:
        for v in rng.normal(0, 1, 300):
            fh.write(json.dumps({name: float(v), "gone " + name: 1.0, "cat": "plain"}) + "\n")
    with (tmp_path / "cur.jsonl").open("w") as fh:
        for v in rng.normal(3, 1, 300):
            fh.write(json.dumps({name: float(v), "extra " + name: 2.0, "cat": name}) + "\n")
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    result = run("drift", "-r", str(tmp_path / "ref.jsonl"), "-c", str(tmp_path / "cur.jsonl"), "--html", str(html),
                 "--markdown", str(md), "--fail-on", "quality")
    assert result.code == 4, result.stderr
    page = html.read_text()
    assert "<img" not in page and "onerror=alert(1)>" not in page.replace("&gt;", "")
    assert "\x1b" not in page.replace("\\x1b", "")
    for check in ("missing_column_check", "extra_column_check", "baseline_drift_check", "categorical_values_check"):
        assert check in page, check
    assert set(re.findall(r"id='col-([^']*)'", page)) <= set(re.findall(r"href='#col-([^']*)'", page))
    assert all(re.fullmatch(r"[0-9a-f]+", a) for a in re.findall(r"id='col-([^']*)'", page))
    assert "\x1b" not in md.read_text()
    for line in md.read_text().splitlines():
        if line.startswith("| ") and "_check" in line:
            assert line.count(" | ") == 2, line  # check, column, finding: three cells, a | in a name escaped


# -- both sides read at once: which failure is told ------------------------------------


def _parquet(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    pq.write_table(pa.table({"x": rng.normal(size=N), "y": rng.normal(size=N)}), path)
    return path


def _corrupt(path: Path, good: Path) -> Path:
    data = bytearray(good.read_bytes())
    data[4:len(data) - 8] = bytes(len(data) - 12)  # magic bytes kept, pages and footer gone
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("broken", ["reference", "current", "both"])
def test_a_broken_side_is_named_when_both_are_read_at_once(tmp_path, broken):
    good_ref, good_cur = _parquet(tmp_path / "ref.parquet", 1), _parquet(tmp_path / "cur.parquet", 2)
    ref = _corrupt(tmp_path / "bad_ref.parquet", good_ref) if broken in ("reference", "both") else good_ref
    cur = _corrupt(tmp_path / "bad_cur.parquet", good_cur) if broken in ("current", "both") else good_cur
    result = run("drift", "-r", str(ref), "-c", str(cur))
    assert result.code == 3, result.stderr
    named = ref if broken != "current" else cur  # both broken: the reference's failure, as when read in turn
    assert str(named) in result.stderr and "cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
