"""Random bytes, random JSON and mutated documents fed to every reader (issue 15, item 10).

Each reader is reached the way users reach it, through the CLI in-process:

- edge bundles and their manifest.json: `mlship serve X.mlbundle --workers 0`
  (the bundle is unpacked and verified before the serve options are checked,
  so an accepted bundle ends in the usage error about --workers), and the
  manifest of a device's current version: `mlship edge run --port -1`;
- a target's index.json and channels/CHANNEL.json: `pull`, `promote`, `edge sync`;
- saved drift profiles: `mlship drift --reference PROFILE`, `mlship profile PROFILE -o OUT`;
- prediction logs: `mlship drift --current LOGS` (lenient and --strict),
  `mlship rollout step --dry-run --logs LOGS`, and `mlship.predlog.reader`;
- mlship.yaml and MLSHIP_* variables: `mlship config show`.

Every run must end with the documented exit code (never 1), one `error:` line
on stderr and no traceback, and must write nothing when it refuses the input
(the directory tree is compared before and after). Inputs come from three
sources: random bytes, random JSON documents, and structured mutations of a
valid document (a key dropped, a value's type changed, an unknown key or a
hostile path added, the text truncated) which reach much deeper than noise.
Every crash found is also kept as an explicit @example.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlship.errors import InvalidInputError
from tests.support import MODEL, Result, run

# Deterministic (CI reruns the same examples), no example database written into the tree.
# MLSHIP_PROPERTY_EXAMPLES=2000 MLSHIP_PROPERTY_SEED=random explores further (what it finds becomes an @example).
_SCALE = int(os.environ.get("MLSHIP_PROPERTY_EXAMPLES", "80"))
PROPERTY = settings(max_examples=_SCALE, deadline=None, database=None,
                    derandomize=os.environ.get("MLSHIP_PROPERTY_SEED") != "random",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
FEW = settings(PROPERTY, max_examples=max(1, _SCALE // 2))

# -- inputs ----------------------------------------------------------------------

JSON_SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)

# Values a careless or hostile writer puts where another type belongs.
ODD_VALUES = [None, True, 0, -1, 1.5, 10**30, float("inf"), float("nan"), "", "x", "n/a", "../../escape",
              "/etc/passwd", ".", "..", "a\nb", "[/bold]", [], [1, 2], {}, {"k": "v"}, "1" * 50]

# Inputs every JSON or YAML reader must refuse cleanly (the stdlib parsers raise
# RecursionError or a plain ValueError on them, not their decode error).
NASTY_TEXTS = [b"[" * 5000, b"{\"a\":" * 5000, b"1" * 5000, b"\xff\xfe\x00garbage", b"\x00" * 64,
               b"\xef\xbb\xbf{}", b"NaN", b"-Infinity", b"1e999", b'"\\ud800"']


def dumps(doc: Any) -> bytes:
    """JSON as Python writes it (NaN and Infinity included: a sloppy writer's output)."""
    return json.dumps(doc).encode()


def json_texts() -> st.SearchStrategy[bytes]:
    return JSON_VALUES.map(dumps)


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, prefix + (i,))


def _replace(doc: Any, path: tuple, op: str, value: Any) -> Any:
    """A copy of doc with the node at path dropped, replaced, or given an extra key."""
    if not path:
        if op == "extra" and isinstance(doc, dict):
            return {**doc, "unexpected_key": value}
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        if not rest and op == "drop":
            del copy[head]
        else:
            copy[head] = _replace(doc[head], rest, op, value)
        return copy
    copy = list(doc)
    if not rest and op == "drop":
        del copy[head]
    else:
        copy[head] = _replace(doc[head], rest, op, value)
    return copy


@st.composite
def mutated(draw: st.DrawFn, valid: Any, encode=dumps) -> bytes:
    """A valid document, changed in one or two places, then maybe truncated or bit-flipped."""
    doc = valid
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(list(_paths(doc))))
        op = draw(st.sampled_from(["drop", "type", "random", "extra"]))
        if op == "drop" and not path:
            op = "type"
        value = draw(st.sampled_from(ODD_VALUES)) if op in ("type", "extra") else draw(JSON_VALUES)
        doc = _replace(doc, path, "replace" if op == "random" else op, value)
    text = encode(doc)
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip"]))
    if damage == "truncate" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif damage == "flip" and text:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + bytes([text[i] ^ (1 << draw(st.integers(0, 7)))]) + text[i + 1:]
    return text


def documents(valid: Any, encode=dumps) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, and (weighted up: they find the most) mutations of `valid`."""
    return st.one_of(st.binary(max_size=300), json_texts(), mutated(valid, encode), mutated(valid, encode),
                     st.sampled_from(NASTY_TEXTS))


# -- checks ----------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind and content (links by where they point)."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                tree[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[rel] = ("dir",)
            else:
                tree[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return tree


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def refused_cleanly(result: Result, allowed: set[int], what: str) -> None:
    """The documented code, never 1; on failure one `error:` line and no traceback."""
    detail = f"{what}: exit {result.code} (allowed {sorted(allowed)}); stderr: {result.stderr!r}"
    assert result.code != 1, detail
    assert result.code in allowed, detail
    assert "Traceback" not in result.stderr + result.stdout, detail
    lines = result.stderr.strip().splitlines()
    if result.code in (2, 3, 7):
        assert len(lines) == 1 and lines[0].startswith("error:"), detail
    else:
        assert len(lines) <= 1, detail


@contextmanager
def watched(root: Path, what: str, *, may_write: tuple[str, ...] = (),
            reports: tuple[str, ...] = ()) -> Iterator[dict[str, Result]]:
    """Run the body's CLI call; nothing under root may change unless it exited 0
    and only paths under `may_write` changed. `reports` (exact paths, or folders ending in /)
    may change whatever the exit code: a device keeps its id and reports a failed sync too."""
    before = snapshot(root)
    holder: dict[str, Result] = {}
    yield holder
    code = holder["result"].code
    changed = changes(before, snapshot(root))
    reported = [c for c in changed if c in reports or c + "/" in reports
                or c.startswith(tuple(r for r in reports if r.endswith("/")))]
    stray = [c for c in changed if c not in reported and not (code == 0 and may_write and c.startswith(may_write))]
    assert not stray, f"{what}: exit {code} but changed {stray}"


def cli(*args: str) -> Result:
    return run("-q", *args)


# -- fixtures: one valid example of every document -------------------------------

MODEL_BYTES = MODEL.read_bytes()
MANIFEST = {
    "schema": "mlship.bundle/v1", "name": "m", "version": "1", "created": "2026-11-01T00:00:00Z",
    "model": "model.onnx",
    "files": [{"path": "model.onnx", "sha256": hashlib.sha256(MODEL_BYTES).hexdigest(), "size": len(MODEL_BYTES)}],
}


def bundle_bytes(manifest: bytes) -> bytes:
    """A bundle as mlship builds one (gzipped tar), with this manifest.json text."""
    files = {"model.onnx": MODEL_BYTES, "manifest.json": manifest}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(files[name]), 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


VALID_BUNDLE = bundle_bytes(json.dumps(MANIFEST).encode())
BUNDLE_ENTRY = {"path": "m-1.mlbundle", "sha256": hashlib.sha256(VALID_BUNDLE).hexdigest(), "size": len(VALID_BUNDLE)}
INDEX = {"name": "m", "versions": [{"version": "1", "files": [BUNDLE_ENTRY], "size": len(VALID_BUNDLE),
                                    "created": "2026-11-01T00:00:00Z"}]}
CHANNEL = {"name": "m", "channel": "stable", "version": "1", "updated": "2026-11-01T00:00:00Z"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Shared, read-only inputs: an empty config, a reference CSV and its saved profile."""
    root = tmp_path_factory.mktemp("readers")
    (root / "empty.yaml").write_text("")
    rows = ["age,group"] + [f"{20 + i % 50},{'abc'[i % 3]}" for i in range(300)]
    (root / "ref.csv").write_text("\n".join(rows) + "\n")
    result = cli("-c", str(root / "empty.yaml"), "profile", str(root / "ref.csv"), "-o", str(root / "ref.profile.json"))
    assert result.code == 0, result.stderr
    return root


@contextmanager
def scratch() -> Iterator[Path]:
    """A new directory per example (hypothesis runs many examples in one test call)."""
    path = Path(tempfile.mkdtemp(prefix="mlship-prop-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def temp_root(path: Path) -> Iterator[None]:
    """Temporary files of the command under test go to `path`, so leftovers are seen."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = saved


# -- bundles and manifests ------------------------------------------------------


def serve_bundle(base: Path, data: bytes, what: str) -> None:
    """`serve X.mlbundle --workers 0`: 3 when refused, else the --workers usage error (2)."""
    with scratch() as work:
        bundle = work / "m-1.mlbundle"
        bundle.write_bytes(data)
        tmp = work / "tmp"
        tmp.mkdir()
        with temp_root(tmp), watched(work, what) as w:
            w["result"] = result = cli("-c", str(base / "empty.yaml"), "serve", str(bundle), "--workers", "0")
        refused_cleanly(result, {2, 3}, what)
        if result.code == 2:  # accepted: only the serve option may be what is wrong
            assert "workers" in result.stderr, f"{what}: a bundle problem reported as a usage error: {result.stderr}"


def edge_run_manifest(base: Path, manifest: bytes) -> None:
    """`edge run --port -1` on a device whose current version has this manifest.json:
    3 when refused, else the --port usage error (2); the device directory is left as it was."""
    with scratch() as work:
        folder = work / "dev" / "versions" / "1"
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(MODEL_BYTES)
        (folder / "manifest.json").write_bytes(manifest)
        os.symlink("versions/1", work / "dev" / "current")
        with watched(work, "edge run manifest") as w:
            w["result"] = result = cli("-c", str(base / "empty.yaml"), "edge", "run", "--dir", str(work / "dev"),
                                       "--port", "-1")
        refused_cleanly(result, {2, 3}, "edge run manifest")
        if result.code == 2:
            assert "port" in result.stderr, f"edge run: a manifest problem reported as a usage error: {result.stderr}"


def _flipped(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]


BUNDLE_BYTES = st.one_of(
    st.binary(max_size=400),
    st.binary(max_size=400).map(lambda b: gzip.compress(b, mtime=0)),  # past gzip, into tar
    st.integers(0, len(VALID_BUNDLE) - 1).map(lambda n: VALID_BUNDLE[:n]),  # truncated
    st.integers(0, len(VALID_BUNDLE) - 1).map(lambda i: _flipped(VALID_BUNDLE, i)),
)


@FEW
@given(data=BUNDLE_BYTES)
@example(data=VALID_BUNDLE[:600])  # found: the refused bundle's mlship-bundle-* directory was left behind
@example(data=gzip.compress(b"\x00" * 1024))  # a tar of zero blocks: no entries at all
def test_bundle_bytes_are_refused_with_exit_3(base, data):
    serve_bundle(base, data, "bundle")


_FILE = MANIFEST["files"][0]
# Found on main before issue 15 (exit 1 with a TypeError/KeyError/UnicodeDecodeError/RecursionError,
# exit 2 blaming a serve option, or exit 3 leaving the unpacked directory behind):
MANIFEST_CRASHES = [
    b"0", b"", b"[" * 5000, b'{"name": "\xbc"}',
    dumps({**MANIFEST, "files": "x"}), dumps({**MANIFEST, "files": [1]}), dumps({**MANIFEST, "files": {"model.onnx": 1}}),
    dumps({**MANIFEST, "files": [{"sha256": _FILE["sha256"], "size": _FILE["size"]}]}),
    dumps({**MANIFEST, "model": []}), dumps({**MANIFEST, "name": 5}), dumps({**MANIFEST, "version": []}),
    dumps({**MANIFEST, "model": "../model.onnx"}), dumps({**MANIFEST, "files": [{**_FILE, "sha256": None}]}),
]


@pytest.mark.parametrize("manifest", MANIFEST_CRASHES, ids=range(len(MANIFEST_CRASHES)))
def test_manifests_that_crashed_are_refused(base, manifest):
    serve_bundle(base, bundle_bytes(manifest), "manifest")
    edge_run_manifest(base, manifest)


def test_the_valid_bundle_is_accepted(base):
    # The control: the checks above would pass vacuously if nothing were ever accepted.
    with scratch() as work:
        (work / "m-1.mlbundle").write_bytes(VALID_BUNDLE)
        result = cli("-c", str(base / "empty.yaml"), "serve", str(work / "m-1.mlbundle"), "--workers", "0")
    assert result.code == 2 and "workers" in result.stderr, result.stderr
    edge_run_manifest(base, dumps(MANIFEST))


@PROPERTY
@given(manifest=documents(MANIFEST))
@example(manifest=MANIFEST_CRASHES[0])
def test_bundle_manifests_are_refused_with_exit_3(base, manifest):
    serve_bundle(base, bundle_bytes(manifest), "manifest")
    edge_run_manifest(base, manifest)


# -- target index and channel ---------------------------------------------------


def target_commands(work: Path, channel_only: bool = False) -> list[tuple[list[str], tuple[str, ...]]]:
    """Every command that reads NAME/index.json or a channel, and what it may write on success."""
    t = f"file://{work / 't'}"
    commands = [
        (["pull", "m@stable", "--from", t, "-o", str(work / "out")], ("out",)),
        (["edge", "sync", "--from", t, "--name", "m", "--channel", "stable", "--dir", str(work / "dev")], ("dev/",)),
    ]
    if not channel_only:
        commands += [
            (["pull", "m:1", "--from", t, "-o", str(work / "out")], ("out",)),
            (["pull", "m", "--from", t, "-o", str(work / "out")], ("out",)),
            (["promote", "m", "1", "--channel", "beta", "--to", t], ("t/m/channels/beta.json",)),
        ]
    return commands


def target_dir(work: Path, index: bytes, channel: bytes) -> str:
    """A file target holding m 1 (a valid bundle) with this index and stable channel; its URL."""
    root = work / "t" / "m"
    (root / "channels").mkdir(parents=True)
    (root / "1").mkdir()
    (root / "1" / "m-1.mlbundle").write_bytes(VALID_BUNDLE)
    (root / "index.json").write_bytes(index)
    (root / "channels" / "stable.json").write_bytes(channel)
    (work / "dev").mkdir()
    return f"file://{work / 't'}"


def run_target(base: Path, index: bytes, channel: bytes, what: str, channel_only: bool = False) -> None:
    for i in range(len(target_commands(Path("."), channel_only))):
        with scratch() as work:
            target_dir(work, index, channel)
            args, may_write = target_commands(work, channel_only)[i]
            # edge sync keeps the device's id (dev/state.json) and reports even a refused sync (edge.md)
            reports = ("dev", "dev/state.json", "t/m/devices/") if args[:2] == ["edge", "sync"] else ()
            with watched(work, f"{what}: mlship {' '.join(args[:2])}", may_write=may_write, reports=reports) as w:
                w["result"] = result = cli("-c", str(base / "empty.yaml"), *args)
            refused_cleanly(result, {0, 2, 3, 7}, f"{what}: mlship {' '.join(args[:2])}")


def test_the_valid_target_is_accepted(base):
    with scratch() as work:
        t = target_dir(work, dumps(INDEX), dumps(CHANNEL))
        assert cli("pull", "m@stable", "--from", t, "-o", str(work / "out")).code == 0
        assert (work / "out" / "m-1.mlbundle").read_bytes() == VALID_BUNDLE
        result = cli("edge", "sync", "--from", t, "--name", "m", "--channel", "stable", "--dir", str(work / "dev"))
        assert result.code == 0, result.stderr
        assert os.readlink(work / "dev" / "current") == "versions/1"


_VERSION = INDEX["versions"][0]
# Found on main before issue 15: exit 1 (KeyError, TypeError, UnicodeDecodeError, ValueError past the
# integer digit limit, RecursionError), and exit 3 from edge sync leaving dev/versions behind.
INDEX_CRASHES = [
    b"{}", b"8", b"[]", b'"."', b"\xb1", b"1" * 5000, b"[" * 5000,
    dumps({**INDEX, "versions": [{**_VERSION, "version": []}]}),
    dumps({**INDEX, "versions": [{**_VERSION, "files": [{**BUNDLE_ENTRY, "path": 0}]}]}),
    dumps({**INDEX, "versions": [{**_VERSION, "files": [{**BUNDLE_ENTRY, "sha256": "", "size": ".."}]}]}),
]
CHANNEL_CRASHES = [b"", b"{", b'{"name": [', b"{}", b"0", b"[]", b'"x"', b"\xb0", b"1" * 5000, b"[" * 5000,
                   b'{"\\}00d0": {}}', b'{"name": "m", "channel": "stable", "version": "1", "updated": "..\x02}']


@pytest.mark.parametrize("index", INDEX_CRASHES, ids=range(len(INDEX_CRASHES)))
def test_indexes_that_crashed_are_refused(base, index):
    run_target(base, index, dumps(CHANNEL), "index.json")


@pytest.mark.parametrize("channel", CHANNEL_CRASHES, ids=range(len(CHANNEL_CRASHES)))
def test_channels_that_crashed_are_refused(base, channel):
    run_target(base, dumps(INDEX), channel, "channels/stable.json", channel_only=True)


@PROPERTY
@given(index=documents(INDEX))
def test_target_index_is_refused_cleanly(base, index):
    run_target(base, index, dumps(CHANNEL), "index.json")


@PROPERTY
@given(channel=documents(CHANNEL))
def test_target_channel_is_refused_cleanly(base, channel):
    run_target(base, dumps(INDEX), channel, "channels/stable.json", channel_only=True)


# -- drift profiles -------------------------------------------------------------


@pytest.fixture(scope="module")
def profile_doc(base) -> dict[str, Any]:
    return json.loads((base / "ref.profile.json").read_text())


PROFILE_HEAD = b'{"schema": "mlship.profile/v1", '  # what makes drift read a .json file as a saved profile


def run_profile(base: Path, data: bytes) -> None:
    """`drift --reference PROFILE`, and `profile PROFILE -o OUT` (merging saved profiles)."""
    with scratch() as work:
        ref = work / "ref.profile.json"
        ref.write_bytes(data)
        with watched(work, "profile: drift --reference") as w:
            w["result"] = result = cli("-c", str(base / "empty.yaml"), "drift", "--reference", str(ref),
                                       "--current", str(base / "ref.csv"), "--min-rows", "1")
        refused_cleanly(result, {0, 3, 4}, "profile: drift --reference")
        with watched(work, "profile: profile -o", may_write=("out.json",)) as w:
            w["result"] = result = cli("-c", str(base / "empty.yaml"), "profile", str(ref), str(ref),
                                       "-o", str(work / "out.json"))
        refused_cleanly(result, {0, 3}, "profile: profile -o")


def test_the_valid_profile_is_accepted(base):
    result = cli("-c", str(base / "empty.yaml"), "drift", "--reference", str(base / "ref.profile.json"),
                 "--current", str(base / "ref.csv"))
    assert result.code == 0, result.stderr


def profile_crashes(doc: dict[str, Any]) -> list[bytes]:
    """Found on main before issue 15, each exit 1 (the saved profile is built in the fixture)."""
    exact = ("columns", "age", "numeric", "exact", 0)
    return [
        PROFILE_HEAD + b"\xf1",  # UnicodeDecodeError
        dumps(_replace(doc, ("rows",), "drop", None)),  # KeyError
        dumps(_replace(doc, ("columns", "age", "categories"), "type", None)),  # AttributeError
        dumps(_replace(doc, exact, "type", {})),  # TypeError: float() argument
        dumps(_replace(doc, exact, "type", "x")),  # ValueError: could not convert string to float
        dumps(_replace(doc, exact, "type", [1, 2])),  # ValueError: setting an array element with a sequence
        dumps(_replace(doc, ("columns", "group", "missing"), "type", {"a": 1})),  # TypeError: unsupported +
        dumps(_replace(doc, ("columns", "group", "categories", "a"), "type", {"k": 1})),  # int() of a dict
    ]


def test_profiles_are_refused_with_exit_3(base, profile_doc):
    @PROPERTY
    @given(data=st.one_of(documents(profile_doc), st.binary(max_size=300).map(lambda b: PROFILE_HEAD + b)))
    def check(data):
        run_profile(base, data)

    for data in profile_crashes(profile_doc):
        run_profile(base, data)
    check()


# -- prediction logs ------------------------------------------------------------

RECORD = {"ts": "2026-11-01T00:00:00.000Z", "request_id": "r1", "model": "m", "version": "2", "variant": "canary",
          "inputs": {"age": 30, "group": "a"}, "outputs": {"label": 1, "probabilities": [0.2, 0.8]},
          "latency_ms": 1.5, "status": 200, "error": None}


def valid_line(i: int, version: str = "2") -> bytes:
    return dumps({**RECORD, "request_id": f"r{i}", "version": version,
                  "inputs": {"age": 20 + i % 50, "group": "abc"[i % 3]}})


LOG_LINES = st.lists(st.one_of(st.binary(max_size=80).filter(lambda b: b"\n" not in b),
                               json_texts().filter(lambda b: b"\n" not in b),
                               mutated(RECORD).filter(lambda b: b"\n" not in b),
                               mutated(RECORD).filter(lambda b: b"\n" not in b),
                               st.sampled_from(NASTY_TEXTS)),
                     min_size=1, max_size=4)


def write_log(directory: Path, lines: list[bytes]) -> None:
    """The fuzzed lines among valid records of both versions (so a lenient reader has rows)."""
    directory.mkdir()
    good = [valid_line(i, "1" if i % 2 else "2") for i in range(6)]
    body = b"\n".join(good[:3] + lines + good[3:]) + b"\n"
    (directory / "predictions-m-canary-1.jsonl").write_bytes(body)


def run_logs(base: Path, rollout: Path, lines: list[bytes]) -> None:
    for strict in ([], ["--strict"]):
        with scratch() as work:
            write_log(work / "logs", lines)
            with watched(work, "predlog drift") as w:
                w["result"] = result = cli("-c", str(base / "empty.yaml"), "drift", "--reference",
                                           str(base / "ref.profile.json"), "--current", str(work / "logs"),
                                           "--min-rows", "1", *strict)
            refused_cleanly(result, {0, 3, 4}, f"predlog: drift {' '.join(strict)}")
    with scratch() as work:
        write_log(work / "logs", lines)
        with watched(rollout, "predlog rollout") as w:
            w["result"] = result = cli("-c", str(rollout / "mlship.yaml"), "rollout", "step", "m",
                                       "--logs", str(work / "logs"), "--dry-run")
        refused_cleanly(result, {0, 3, 4, 5}, "predlog: rollout step --dry-run")
        try:  # the schema's own reader: valid records, or InvalidInputError naming the line
            from mlship.predlog.reader import read_records

            list(read_records(work / "logs"))
        except InvalidInputError as exc:
            assert "\n" not in exc.one_line() and "predictions-m-canary-1.jsonl:" in exc.one_line()


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    """A canary of m 2 over 1 through the file router, its step opened long ago."""
    root = tmp_path_factory.mktemp("rollout")
    (root / "mlship.yaml").write_text(
        "name: m\nrollout:\n  router: {type: file, path: route.json, upstreams: "
        "{blue: 'http://127.0.0.1:1', green: 'http://127.0.0.1:2'}}\n"
        "  steps: [10, 50, 100]\n  analysis: {min_requests: 1, max_p99_latency_ms: 100, max_prediction_drift: 0.5}\n")
    result = run("-c", str(root / "mlship.yaml"), "rollout", "start", "m", "--candidate", "2", "--stable", "1")
    assert result.code == 0, result.stderr
    state = root / ".mlship" / "rollouts" / "m.json"
    doc = json.loads(state.read_text())
    doc["step_started"] = "2020-01-01T00:00:00.000Z"  # every record's ts falls in the window
    state.write_text(json.dumps(doc))
    return root


def test_valid_logs_are_read(base, rollout):
    with scratch() as work:
        write_log(work / "logs", [valid_line(9)])
        assert cli("-c", str(base / "empty.yaml"), "drift", "--reference", str(base / "ref.profile.json"),
                   "--current", str(work / "logs"), "--min-rows", "1", "--strict").code in (0, 4)
        result = run("-c", str(rollout / "mlship.yaml"), "--json", "rollout", "step", "m", "--logs",
                     str(work / "logs"), "--dry-run")
        assert result.code in (0, 4), result.stdout
        assert result.json()["gate"]["counts"] == {"stable": 3, "candidate": 4}


def _record(**change: Any) -> bytes:
    return dumps({**RECORD, **change})


@PROPERTY
@given(lines=LOG_LINES)
@example(lines=[b"\x80"])  # found: UnicodeDecodeError out of mlship.predlog.reader
@example(lines=[_record(ts=None)])  # found: the rollout gate compared None with a time, exit 1
@example(lines=[_record(version=[])])  # found: drift grouped by an unhashable version, exit 1
@example(lines=[_record(status="500"), _record(latency_ms="slow"), _record(request_id=7)])
def test_prediction_logs_are_refused_or_skipped_cleanly(base, rollout, lines):
    run_logs(base, rollout, lines)


# -- mlship.yaml and MLSHIP_* ---------------------------------------------------

CONFIG = {
    "name": "m", "version": "1.4.0", "model": "model.onnx", "sample": "sample.csv",
    "check": {"tolerance": 0.001, "min_metric": {"accuracy": 0.9}, "task": "classification"},
    "build": {"image": {"base": "python:3.11-slim", "repository": "registry.local:5000/ml/m"},
              "edge": {"quantize": "int8", "max_accuracy_drop": 0.01}},
    "targets": {"cloud": {"type": "s3", "url": "s3://models/m"}, "onprem": {"type": "file", "url": "file:///srv/m"}},
    "rollout": {"router": {"type": "file", "path": "route.json", "upstreams": {"blue": "http://a", "green": "http://b"}},
                "strategy": "canary", "steps": [5, 25, 100], "analysis": {"max_error_rate": 0.01, "min_requests": 10}},
    "monitoring": {"reference": "train.csv", "drift_share": 0.5, "columns": {"age": {"kind": "numeric"}}},
}


def yaml_text(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


# YAML that the parser accepts and then fails to construct, or that nests past the recursion limit.
NASTY_YAML = [b"version: 2026-02-30\n", b"name: !!float abc\n", b"name: !!timestamp 2020-13-45\n",
              b"steps: " + b"1" * 5000 + b"\n", b"a: &x [*x]\nrollout: {logs: *x}\n", b"- " * 3000 + b"x\n"]


def run_config(base: Path, data: bytes, env: dict[str, str] | None = None) -> None:
    with scratch() as work:
        config = work / "mlship.yaml"
        config.write_bytes(data)
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            with watched(work, "config") as w:
                w["result"] = result = cli("-c", str(config), "config", "show")
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        refused_cleanly(result, {0, 2}, "mlship.yaml" if env is None else f"environment {env}")


def test_the_valid_config_is_accepted(base):
    with scratch() as work:
        (work / "mlship.yaml").write_bytes(yaml_text(CONFIG))
        result = run("-c", str(work / "mlship.yaml"), "--json", "config", "show")
    assert result.code == 0, result.stderr
    assert result.json()["config"]["rollout"]["steps"] == [5, 25, 100]


@PROPERTY
@given(data=st.one_of(documents(CONFIG), mutated(CONFIG, yaml_text), st.sampled_from(NASTY_YAML)))
@example(data=b"[" * 5000)  # found: RecursionError in the YAML parser, exit 1
@example(data=b"version: 2026-02-30\n")  # found: ValueError building the date, exit 1
@example(data=b"a: " + b"1" * 5000)  # found: ValueError past Python's integer digit limit, exit 1
@example(data=b"\x00" * 64)  # found: the reader's error message spans two lines
def test_config_files_are_refused_with_exit_2(base, data):
    run_config(base, data)


ENV_KEYS = ["MLSHIP_NAME", "MLSHIP_ROLLOUT__STEPS", "MLSHIP_CHECK__TOLERANCE", "MLSHIP_TARGETS",
            "MLSHIP_TARGETS__CLOUD", "MLSHIP_TARGETS__CLOUD__URL", "MLSHIP_MONITORING__COLUMNS__AGE",
            "MLSHIP_BUILD__IMAGE", "MLSHIP_ROLLOUT__ANALYSIS__MIN_REQUESTS"]


@FEW
@given(key=st.sampled_from(ENV_KEYS),
       value=st.one_of(st.text(max_size=30).filter(lambda s: "\x00" not in s), json_texts().map(bytes.decode),
                       st.sampled_from([t.decode() for t in NASTY_YAML if b"\x00" not in t])))
@example(key="MLSHIP_NAME", value="0: 0000-00-00")  # found: ValueError building the date, exit 1
@example(key="MLSHIP_ROLLOUT__STEPS", value="[" * 5000)  # RecursionError in the YAML parser
def test_config_variables_are_refused_with_exit_2(base, key, value):
    run_config(base, yaml_text(CONFIG), {key: value})
