"""Attacks on targets (file:// and S3 on moto): concurrent writers, names that walk out of the
target root, and indexes or channels that someone else wrote badly or on purpose.

Each test states the attack, then checks the exit code, the one-line message and that nothing
was lost or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.support import run

WRITERS = 8
READY, GO = "<ready-fd>", "<go-fd>"  # replaced by the pipe ends each process inherits

# A real `mlship` process that imports everything first, says it is ready, then waits on a pipe
# the test closes once every process is ready: all of them start their command together.
_BOOT = r"""
import os, sys
ready, go = int(sys.argv[1]), int(sys.argv[2])
from mlship.cli import main
import boto3, mlship.targets.artifacts, mlship.targets.file, mlship.targets.s3, mlship.versions
os.write(ready, b"r"); os.close(ready)
os.read(go, 1)
sys.exit(main(sys.argv[3:]))
"""


def run_together(commands: list[list[str]], env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Start one `mlship` process per command behind a barrier; their results, in order."""
    return _together([[sys.executable, "-c", _BOOT, READY, GO, *c] for c in commands], env, cwd)


def _together(argvs: list[list[str]], env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    procs = []
    try:
        for argv in argvs:
            argv = [{READY: str(ready_w), GO: str(go_r)}.get(a, a) for a in argv]
            procs.append(subprocess.Popen(argv, pass_fds=(ready_w, go_r), env={**os.environ, **env}, cwd=cwd,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        os.close(ready_w)
        os.close(go_r)
        ready_w = go_r = -1
        got = b""
        while len(got) < len(procs):  # EOF (b"") means every process has written or died
            chunk = os.read(ready_r, 64)
            if not chunk:
                break
            got += chunk
        assert len(got) == len(procs), "a writer died before the barrier"
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            if fd >= 0:
                os.close(fd)  # closing `go` releases every waiting process at once
    results = []
    for argv, proc in zip(argvs, procs):
        out, err = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results


# ------------------------------------------------------------------------------------- targets


@pytest.fixture(scope="module")
def atomic_s3():
    """A moto server whose requests run one at a time.

    moto checks If-Match / If-None-Match and then stores the object in two steps, so two
    conditional PUTs racing inside its threads can both pass the check; S3 itself decides them
    atomically. Serialising the requests gives the test S3's guarantee, not a weaker one.
    """
    from tests.harness.fixtures import _start
    from tests.harness.services import start_moto_server

    server = _start(start_moto_server)
    wsgi = server.server._server
    inner, lock = wsgi.app, threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return inner(environ, start_response)

    wsgi.app = one_at_a_time
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["file", *(pytest.param(k, marks=pytest.mark.integration) for k in ("s3", "gs", "az"))])
def store(request, tmp_path, monkeypatch):
    """(target URL, env for processes, snapshot() of everything the target holds)."""
    monkeypatch.chdir(tmp_path)
    if request.param == "file":
        root = tmp_path / "store"
        root.mkdir()
        return f"file://{root}", {}, lambda: _tree(tmp_path)
    if request.param in ("gs", "az"):  # the emulators decide conditional writes atomically themselves
        return _cloud_store(request, tmp_path, monkeypatch)
    server = request.getfixturevalue("atomic_s3")
    bucket = f"adv-{uuid.uuid4().hex[:8]}"
    client = server.client("s3")
    client.create_bucket(Bucket=bucket)
    env = {"AWS_ENDPOINT_URL_S3": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def snapshot():
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: o["ETag"] for o in objects}, _tree(tmp_path)

    return f"s3://{bucket}/team", env, snapshot


def _cloud_store(request, tmp_path: Path, monkeypatch):
    from tests.conftest import empty_target

    emulator = request.getfixturevalue({"gs": "gcs_server", "az": "azurite"}[request.param])
    url = empty_target(request.param, request, tmp_path, monkeypatch)
    return url, dict(emulator.env), lambda: (emulator.listing(url), _tree(tmp_path))


def _tree(root: Path) -> dict[str, str]:
    """Every file and directory under root (outside the target too) with a digest of files."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else "dir"
    return out


def _artifact(tmp_path: Path, label: str) -> Path:
    folder = tmp_path / "artifacts" / label
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(f"weights of {label}".encode() * 500)
    (folder / "notes.txt").write_text(label)
    return folder


def _index(target: str, client_env: dict[str, str]) -> dict:
    from mlship.targets.artifacts import read_index
    from mlship.targets.base import open_target

    return read_index(open_target(target, {}), "bc")


# ------------------------------------------------------------------- item 4: concurrent writers


def test_eight_concurrent_pushes_of_distinct_versions_all_land(tmp_path, store):
    """Attack: 8 `mlship push` processes of different versions to one target at the same instant.
    Before: each read the index, uploaded, and wrote its own copy back, so most versions vanished."""
    target, env, _ = store
    versions = [f"1.{i}.0" for i in range(WRITERS)]
    commands = [["push", str(_artifact(tmp_path, v)), "--name", "bc", "--artifact-version", v, "--to", target]
                for v in versions]
    results = run_together(commands, env, tmp_path)
    for r in results:
        assert r.returncode == 0, r.stderr
    index = _index(target, env)
    assert sorted(v["version"] for v in index["versions"]) == sorted(versions)
    for v in versions:
        pulled = run("pull", f"bc:{v}", "--from", target, "-o", str(tmp_path / "pulled" / v))
        assert pulled.code == 0, pulled.stderr
        assert (tmp_path / "pulled" / v / "model.onnx").read_bytes() == f"weights of {v}".encode() * 500
        assert (tmp_path / "pulled" / v / "notes.txt").read_text() == v


def test_eight_concurrent_promotes_to_one_channel_are_all_recorded(tmp_path, store):
    """Attack: 8 `mlship promote` processes move one channel at the same instant. The channel must
    end whole and valid, pointing at the last promotion it recorded, with every promotion counted
    (revision) and kept in its history: no read-modify-write is lost."""
    target, env, _ = store
    versions = [f"2.{i}.0" for i in range(WRITERS)]
    for v in versions:
        assert run("push", str(_artifact(tmp_path, v)), "--name", "bc", "--artifact-version", v,
                   "--to", target).code == 0
    results = run_together([["--json", "promote", "bc", v, "--channel", "stable", "--to", target] for v in versions],
                           env, tmp_path)
    for r in results:
        assert r.returncode == 0, r.stderr
    shown = run("--json", "pull", "bc@stable", "--from", target, "-o", str(tmp_path / "stable"))
    assert shown.code == 0, shown.stderr
    from mlship.targets.artifacts import read_channel
    from mlship.targets.base import open_target

    pointer = read_channel(open_target(target, {}), "bc", "stable")
    assert pointer["revision"] == WRITERS
    history = [h["version"] for h in pointer["history"]]
    assert sorted(history) == sorted(versions)
    assert pointer["version"] == history[-1]
    assert (tmp_path / "stable" / "notes.txt").read_text() == pointer["version"]
    revisions = sorted(json.loads(r.stdout)["revision"] for r in results)
    assert revisions == list(range(1, WRITERS + 1))  # each promotion saw the one before it


_APPENDER = r"""
import os, sys
ready, go, store, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
from mlship.versions import PushRecord, VersionStore
os.write(ready, b"r"); os.close(ready)
os.read(go, 1)
s = VersionStore(store)
for i in range(25):
    s.append(PushRecord(name="bc", version=f"{label}.{i}", artifact="sha256:x", reference=f"r/{label}/{i}"))
"""


def test_concurrent_appends_to_the_versions_store_lose_no_record(tmp_path):
    """Attack: 8 processes each append 25 records to one versions.jsonl at the same instant.
    Before: each read the file and renamed its own copy over it, dropping the others' lines."""
    path = tmp_path / ".mlship" / "versions.jsonl"
    results = _together([[sys.executable, "-c", _APPENDER, READY, GO, str(path), f"w{n}"]
                         for n in range(WRITERS)], {}, tmp_path)
    for r in results:
        assert r.returncode == 0, r.stderr
    from mlship.versions import VersionStore

    records = VersionStore(path).records()
    assert sorted(r["version"] for r in records) == sorted(f"w{n}.{i}" for n in range(WRITERS) for i in range(25))
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------- item 11: names that leave the root

BAD_NAMES = ["../../x", "..", ".", "a/b", "/abs/x", "x\\..\\y", "line\nbreak", "", " v", "v;rm", "%2e%2e", "x" * 129]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_push_with_a_path_for_a_version_or_name_is_refused(tmp_path, store, bad):
    """Attack: `push --artifact-version ../../x` (and other shapes) to write outside the root."""
    target, _, snapshot = store
    art = _artifact(tmp_path, "a")
    before = snapshot()
    for args in (["--artifact-version", bad, "--name", "bc"], ["--artifact-version", "1.0.0", "--name", bad]):
        result = run("push", str(art), *args, "--to", target)
        assert result.code == 2, result.stderr
        assert "is not a valid name" in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot() == before


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_promote_or_pull_with_a_path_for_a_channel_or_version_is_refused(tmp_path, store, bad):
    """Attack: `promote --channel ../../y`, a version or name of that shape, and the same in pull refs."""
    target, _, snapshot = store
    assert run("push", str(_artifact(tmp_path, "a")), "--name", "bc", "--artifact-version", "1.0.0",
               "--to", target).code == 0
    before = snapshot()
    attempts = [("promote", "bc", "1.0.0", "--channel", bad, "--to", target),
                ("promote", "bc", bad, "--channel", "stable", "--to", target),
                ("promote", bad, "1.0.0", "--channel", "stable", "--to", target),
                ("pull", f"bc@{bad}", "--from", target, "-o", str(tmp_path / "o")),
                ("pull", f"bc:{bad}", "--from", target, "-o", str(tmp_path / "o")),
                ("pull", f"{bad}@stable", "--from", target, "-o", str(tmp_path / "o"))]
    for args in attempts:
        if bad == "" and args[0] == "pull" and args[1] == "bc:":
            continue  # "bc:" means the latest version, a valid ref
        result = run(*args)
        assert result.code == 2, (args, result.stderr)
        assert "is not a valid name" in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)
        assert snapshot() == before, args


# --------------------------------------------- items 10 and 11: what a target holds is untrusted


def _plant(target: str, key: str, data: bytes) -> None:
    from mlship.targets.base import open_target

    open_target(target, {}).write(key, data)


def _entry(version: str, path: str = "model.onnx") -> dict:
    return {"version": version, "files": [{"path": path, "sha256": "0" * 64, "size": 1}], "size": 1,
            "created": "2026-01-01T00:00:00Z"}


BAD_INDEXES = {
    "truncated": b'{"name": "bc", "versions": [{"version": "1.0.0", "fi',
    "empty": b"",
    "not utf-8": b'\xff\xfe{"\x00v\xd8',
    "a list": b"[]",
    "null": b"null",
    "versions not a list": json.dumps({"name": "bc", "versions": {"1.0.0": {}}}).encode(),
    "version a number": json.dumps({"versions": [{**_entry("x"), "version": 1}]}).encode(),
    "files missing": json.dumps({"versions": [{"version": "1.0.0"}]}).encode(),
    "sha256 a number": json.dumps({"versions": [{**_entry("1.0.0"),
                                                 "files": [{"path": "m", "sha256": 5, "size": 1}]}]}).encode(),
    "size a string": json.dumps({"versions": [{**_entry("1.0.0"),
                                               "files": [{"path": "m", "sha256": "0" * 64, "size": "big"}]}]}).encode(),
    "deeply nested": b"[" * 200000,
    "version walks out": json.dumps({"versions": [_entry("../../../planted")]}).encode(),
    "version is dot": json.dumps({"versions": [_entry(".")]}).encode(),
    "file path walks out": json.dumps({"versions": [_entry("1.0.0", "../../../escaped")]}).encode(),
    "file path absolute": json.dumps({"versions": [_entry("1.0.0", "/tmp/escaped")]}).encode(),
    "file path with dot-dot inside": json.dumps({"versions": [_entry("1.0.0", "a/../../escaped")]}).encode(),
    "file path empty": json.dumps({"versions": [_entry("1.0.0", "")]}).encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
def test_bad_index_is_invalid_input_and_nothing_is_written(tmp_path, store, case):
    """Attack: an index.json that is truncated, mistyped, or names versions or files outside the
    target, read by pull (latest, by version, by channel), promote and push."""
    target, _, snapshot = store
    _plant(target, "bc/index.json", BAD_INDEXES[case])
    _plant(target, "bc/channels/stable.json", json.dumps({"name": "bc", "channel": "stable",
                                                          "version": "1.0.0"}).encode())
    art = _artifact(tmp_path, "a")
    before = snapshot()
    attempts = [("pull", "bc", "--from", target, "-o", str(tmp_path / "o")),
                ("pull", "bc:1.0.0", "--from", target, "-o", str(tmp_path / "o")),
                ("pull", "bc@stable", "--from", target, "-o", str(tmp_path / "o")),
                ("promote", "bc", "1.0.0", "--channel", "beta", "--to", target),
                ("push", str(art), "--name", "bc", "--artifact-version", "2.0.0", "--to", target)]
    for args in attempts:
        result = run(*args)
        assert result.code == 3, (args, result.stderr)
        assert "index.json" in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        assert snapshot() == before, args
    assert not (tmp_path / "o").exists() and not Path("/tmp/escaped").exists()


BAD_CHANNELS = {
    "truncated": b'{"name": "bc", "version": "1.0',
    "empty": b"",
    "not utf-8": b"\xc3\x28",
    "a list": b'["1.0.0"]',
    "a string": b'"1.0.0"',
    "version missing": b'{"name": "bc"}',
    "version a number": b'{"version": 1.0}',
    "version walks out": b'{"version": "../../../planted"}',
    "version is dot": b'{"version": "."}',
    "version is dot-dot": b'{"version": ".."}',
    "revision a string": b'{"version": "1.0.0", "revision": "many"}',
    "deeply nested": b'{"version": ' + b"[" * 200000,
}


@pytest.mark.parametrize("case", sorted(BAD_CHANNELS))
def test_bad_channel_is_invalid_input_and_nothing_is_written(tmp_path, store, case):
    """Attack: a channel pointer that is truncated, mistyped or points outside the target, read by
    `pull NAME@CHANNEL` and by `promote` (which reads the pointer it replaces)."""
    target, _, snapshot = store
    assert run("push", str(_artifact(tmp_path, "a")), "--name", "bc", "--artifact-version", "1.0.0",
               "--to", target).code == 0
    _plant(target, "bc/channels/stable.json", BAD_CHANNELS[case])
    before = snapshot()
    for args in (("pull", "bc@stable", "--from", target, "-o", str(tmp_path / "o")),
                 ("promote", "bc", "1.0.0", "--channel", "stable", "--to", target)):
        result = run(*args)
        assert result.code == 3, (args, result.stderr)
        assert "channels/stable.json" in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert snapshot() == before, args
    assert not (tmp_path / "o").exists()


def test_symbolic_links_planted_in_a_file_target_carry_nothing_out(tmp_path, monkeypatch):
    """Attack: someone who can write to a shared file target replaces `bc/channels` with a link to
    a directory of the CI user, and `bc/index.json` of another name with a link to a private file.
    promote must not write through the first, pull must not read through the second."""
    monkeypatch.chdir(tmp_path)
    root, outside = tmp_path / "store", tmp_path / "home-ci"
    outside.mkdir()
    (outside / "secret.json").write_text('{"versions": []}')
    target = f"file://{root}"
    assert run("push", str(_artifact(tmp_path, "a")), "--name", "bc", "--artifact-version", "1.0.0",
               "--to", target).code == 0
    (root / "bc" / "channels").symlink_to(outside, target_is_directory=True)
    (root / "xy").mkdir()
    (root / "xy" / "index.json").symlink_to(outside / "secret.json")
    before = _tree(tmp_path)
    for args in (("promote", "bc", "1.0.0", "--channel", "stable", "--to", target),
                 ("pull", "bc@stable", "--from", target, "-o", str(tmp_path / "o")),
                 ("pull", "xy", "--from", target, "-o", str(tmp_path / "o"))):
        result = run(*args)
        assert result.code == 3, (args, result.stderr)
        assert "leads outside the target" in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert _tree(tmp_path) == before, args


def test_a_held_index_lock_makes_push_wait_then_give_up_with_one_line(tmp_path, monkeypatch):
    """Attack: another process holds the index lock for ever (a hung mlship on an NFS client).
    The push waits only a bounded time, exits 7 naming the lock, and the index is unchanged."""
    import fcntl

    import mlship.targets.file

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mlship.targets.file, "LOCK_WAIT_S", 0.3)  # the bound itself is what is tested
    root = tmp_path / "store"
    target = f"file://{root}"
    assert run("push", str(_artifact(tmp_path, "a")), "--name", "bc", "--artifact-version", "1.0.0",
               "--to", target).code == 0
    index_before = (root / "bc" / "index.json").read_bytes()
    with open(root / "bc" / "index.json.lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = run("push", str(_artifact(tmp_path, "b")), "--name", "bc", "--artifact-version", "2.0.0",
                     "--to", target)
    assert result.code == 7, result.stderr
    assert "index.json is locked by another mlship" in result.stderr and result.stderr.count("\n") == 1
    assert (root / "bc" / "index.json").read_bytes() == index_before
    # Once the lock is free the same push goes through: nothing it left behind is in the way.
    again = run("push", str(_artifact(tmp_path, "b2")), "--name", "bc", "--artifact-version", "2.0.0",
                "--to", target)
    assert again.code == 0, again.stderr
    assert sorted(v["version"] for v in json.loads((root / "bc" / "index.json").read_text())["versions"]) == \
        ["1.0.0", "2.0.0"]


@pytest.mark.parametrize("line", [b"5", b"[1, 2]", b"\xff\xfe", b"[" * 100000, b'{"event": "build"'])
def test_a_damaged_versions_store_is_invalid_input(tmp_path, monkeypatch, line):
    """Attack: versions.jsonl with a line that is not a JSON object (a number, a list, bad UTF-8,
    absurd nesting, a truncated record): `versions list` exits 3 naming the line, and writes nothing."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / ".mlship" / "versions.jsonl"
    store.parent.mkdir()
    store.write_bytes(b'{"event": "push", "name": "bc", "version": "1", "artifact": "a", "reference": "r", '
                      b'"created": "2026-01-01T00:00:00Z"}\n' + line + b"\n")
    before = _tree(tmp_path)
    result = run("versions", "list")
    assert result.code == 3, result.stderr
    assert "versions.jsonl:2: not a JSON record" in result.stderr and result.stderr.count("\n") == 1
    assert _tree(tmp_path) == before


# A real `mlship push` that SIGKILLs itself in the middle of its upload: once the first part has been
# handed over (the second time the upload reports progress), so the store holds a partial upload.
_KILLED = r"""
import os, signal, sys
from mlship.cli import main
from mlship.plugins import load
kind = load("targets", sys.argv[1], sys.argv[1])
upload = kind.upload
if sys.argv[1] == "gs":
    import mlship.targets.gcs
    mlship.targets.gcs.CHUNK_SIZE = 8 << 20  # several chunks in the test's file

def dying_upload(self, key, path, progress):
    calls = []
    def progress_then_die(n):
        calls.append(n)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        progress(n)
    return upload(self, key, path, progress_then_die)

kind.upload = dying_upload
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.integration) for k in ("gs", "az")])
def test_a_push_killed_mid_upload_leaves_no_index_entry_and_no_object(tmp_path, kind, request, monkeypatch):
    """Attack (or accident): the pushing process dies with SIGKILL between two parts of a large file.
    The store must hold no object under the final key and no index entry; a new push then succeeds."""
    from tests.conftest import empty_target

    url = empty_target(kind, request, tmp_path, monkeypatch)
    emulator = request.getfixturevalue({"gs": "gcs_server", "az": "azurite"}[kind])
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 << 20))  # several 8 MiB chunks (gs) or blocks (az)
    args = ["push", str(big), "--name", "big", "--artifact-version", "1", "--to", url]
    killed = subprocess.run([sys.executable, "-c", _KILLED, kind, *args], env={**os.environ, **emulator.env},
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert emulator.listing(url) == {}  # nothing visible: no object, no index
    assert run("pull", "big", "--from", url, "-o", str(tmp_path / "o")).code == 2
    again = run(*args)
    assert again.code == 0, again.stderr
    assert run("pull", "big:1", "--from", url, "-o", str(tmp_path / "back")).code == 0
    assert (tmp_path / "back" / "big.bin").read_bytes() == big.read_bytes()


@pytest.mark.parametrize("where", ["config", "AWS_PROFILE"])
def test_an_s3_target_with_an_unknown_aws_profile_is_a_usage_error(tmp_path, monkeypatch, atomic_s3, where):
    """Attack (or typo): `profile:` in mlship.yaml, or AWS_PROFILE, names no profile in the AWS
    config files. Was an internal error (exit 1, botocore's ProfileNotFound); now exit 2, one line
    naming the target and the profile, before anything is uploaded."""
    bucket = f"adv-{uuid.uuid4().hex[:8]}"
    client = atomic_s3.client("s3")
    client.create_bucket(Bucket=bucket)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aws-config").write_text("[profile known]\nregion = us-east-1\n")
    for key, value in {"AWS_ENDPOINT_URL_S3": atomic_s3.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_CONFIG_FILE": str(tmp_path / "aws-config")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = "profile: typo-profile" if where == "config" else "region: us-east-1"
    (tmp_path / "mlship.yaml").write_text(f"targets:\n  site: {{type: s3, url: 's3://{bucket}/t', {settings}}}\n")
    if where == "AWS_PROFILE":
        monkeypatch.setenv("AWS_PROFILE", "typo-profile")
    art = _artifact(tmp_path, "a")
    result = run("-c", str(tmp_path / "mlship.yaml"), "push", str(art), "--name", "bc", "--artifact-version", "1",
                 "--to", "site")
    assert result.code == 2, result.stderr
    assert f"s3://{bucket}/t:" in result.stderr and "typo-profile" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
