"""A push to several targets reads the artifact once: one read, hashed once, feeds every target
(targets/hashing.py SharedRead); a failing target holds the others back no more."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import resource
import subprocess
import sys
import threading
import time
import uuid

import pytest

from mlship.targets.hashing import SharedRead
from tests.support import run

MB = 1 << 20


def random_file(path, mb, extra=0):
    with path.open("wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(MB))
        fh.write(os.urandom(extra))
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CountingFile(io.RawIOBase):
    """The real file, opened as usual, with every byte read from it counted."""

    def __init__(self, fh, counter):
        self.fh, self.counter = fh, counter

    def read(self, size=-1):
        data = self.fh.read(size)
        self.counter["bytes"] += len(data)
        return data

    def readinto(self, buffer):
        n = self.fh.readinto(buffer)
        self.counter["bytes"] += n or 0
        return n

    def readable(self):
        return True

    def seekable(self):
        return self.fh.seekable()

    def seek(self, offset, whence=0):
        return self.fh.seek(offset, whence)

    def tell(self):
        return self.fh.tell()

    def fileno(self):
        return self.fh.fileno()

    def close(self):
        self.fh.close()
        super().close()


@pytest.fixture
def reads_of(monkeypatch):
    """reads_of(path) -> a dict whose "bytes" counts every byte this process reads from `path`."""
    real_open = pathlib.Path.open
    counted = {}

    def opening(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        counter = counted.get(str(self))
        return CountingFile(fh, counter) if counter is not None and mode == "rb" else fh

    monkeypatch.setattr(pathlib.Path, "open", opening)
    return lambda path: counted.setdefault(str(path), {"bytes": 0})


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for key, value in {"AWS_ENDPOINT_URL_S3": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)

    def bucket():
        name = f"shared-{uuid.uuid4().hex[:8]}"
        s3_server.client("s3").create_bucket(Bucket=name)
        return name

    return bucket


def push(path, *targets, version="1"):
    args = ["--json", "push", str(path), "--name", "big", "--artifact-version", version]
    for target in targets:
        args += ["--to", target]
    return run(*args)


def test_two_s3_targets_and_a_directory_read_the_artifact_once_and_get_identical_bytes(
        tmp_path, s3_server, s3_env, reads_of):
    big = random_file(tmp_path / "big.bin", 40, extra=12345)  # three 16 MB parts, the last one short
    buckets = [s3_env(), s3_env()]
    store = tmp_path / "store"
    counter = reads_of(big)
    result = push(big, f"s3://{buckets[0]}", f"s3://{buckets[1]}", f"file://{store}")
    assert result.code == 0, result.stderr
    size = big.stat().st_size
    assert counter["bytes"] == size  # one read for three targets, the report's digest included
    report = result.json()
    assert [r["status"] for r in report["results"]] == ["pushed"] * 3
    assert report["artifact"] == f"sha256:{sha256(big)}"
    client = s3_server.client("s3")
    for bucket in buckets:
        assert hashlib.sha256(client.get_object(Bucket=bucket, Key="big/1/big.bin")["Body"].read()).hexdigest() \
            == sha256(big)
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert sha256(store / "big" / "1" / "big.bin") == sha256(big)
    for i, target in enumerate([f"s3://{buckets[0]}", f"s3://{buckets[1]}", f"file://{store}"]):
        pulled = run("pull", "big:1", "--from", target, "-o", str(tmp_path / f"back{i}"))  # checks the index's sha256
        assert pulled.code == 0, pulled.stderr
        assert (tmp_path / f"back{i}" / "big.bin").read_bytes() == big.read_bytes()


@pytest.fixture
def sent_parts(monkeypatch):
    """Every UploadPart the S3 targets made in this process send: (X-Amz-Content-SHA256,
    x-amz-checksum-crc32, the body's own sha256, its CRC32 as botocore computes one)."""
    from botocore.httpchecksum import Crc32Checksum

    from mlship.targets.s3 import S3Target

    sent = []

    def spy(request, **_):
        header = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent.append((header["x-amz-content-sha256"], header["x-amz-checksum-crc32"],
                     hashlib.sha256(request.body).hexdigest(), Crc32Checksum().handle(request.body)))

    real_init = S3Target.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.client.meta.events.register("before-send.s3.UploadPart", spy)

    monkeypatch.setattr(S3Target, "__init__", init)
    return sent


def test_two_s3_targets_sign_each_part_with_its_own_digests_taken_once_for_both(
        tmp_path, s3_server, s3_env, sent_parts, monkeypatch):
    """SigV4 over plain http signs each part's sha256, and each part carries its CRC32: the
    push takes both once per part for every target, and what goes out is what botocore
    itself would have computed for those very bytes."""
    from mlship.targets import s3

    taken = []
    real = s3.part_digests
    monkeypatch.setattr(s3, "part_digests", lambda data: taken.append(len(data)) or real(data))
    big = random_file(tmp_path / "big.bin", 40, extra=12345)  # three 16 MB parts, the last one short
    buckets = [s3_env(), s3_env()]
    result = push(big, f"s3://{buckets[0]}", f"s3://{buckets[1]}")
    assert result.code == 0, result.stderr
    assert len(sent_parts) == 6  # three parts to each store
    for signed, crc32, body_sha256, body_crc32 in sent_parts:
        assert signed == body_sha256 and crc32 == body_crc32
    assert sorted(taken) == sorted([16 * MB, 16 * MB, 8 * MB + 12345])  # once per part, not per target
    for bucket in buckets:
        got = s3_server.client("s3").get_object(Bucket=bucket, Key="big/1/big.bin")["Body"].read()
        assert hashlib.sha256(got).hexdigest() == sha256(big)


def test_a_part_the_push_did_not_prepare_is_signed_over_its_own_bytes(s3_server, s3_env, sent_parts):
    """The known sha256 serves only the bytes object it was taken from: any other body (here
    while another part's digest is in place on this thread) is hashed by botocore as usual."""
    from mlship.targets.s3 import _KNOWN, S3Target

    bucket = s3_env()
    target = S3Target(f"s3://{bucket}", endpoint_url=s3_server.endpoint_url)
    client = target.client
    upload = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    other, body = os.urandom(1000), b"abc" * 1000
    _KNOWN.part = (other, hashlib.sha256(other).hexdigest())
    try:
        client.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=body)
    finally:
        _KNOWN.part = None
    client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload)
    assert [(signed, mine) for signed, _, mine, _ in sent_parts] == [(hashlib.sha256(body).hexdigest(),) * 2]


def test_only_plain_http_stores_have_their_parts_hashed_for_signing(s3_server, s3_env, monkeypatch):
    """Over https botocore sends S3 parts unsigned, with their CRC32: no sha256 is taken for
    them (a store behind TLS costs no hashing per part); over http every part's is."""
    from mlship.targets import s3

    hashed = []
    real = s3.part_digests
    monkeypatch.setattr(s3, "part_digests", lambda data: hashed.append(len(data)) or real(data))
    bucket = s3_env()
    plain = s3.S3Target(f"s3://{bucket}", endpoint_url=s3_server.endpoint_url)
    upload = plain.client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    assert plain._part("k", upload, 1, b"x" * 1000, None, lambda n: None)["ETag"]
    assert hashed == [1000]
    hashed.clear()
    tls = s3.S3Target(f"s3://{bucket}", endpoint_url="https://127.0.0.1:9")  # nothing listens: refused
    assert (plain.signs_payload, tls.signs_payload) == (True, False)
    with pytest.raises(Exception, match="127.0.0.1:9"):
        tls._part("k", upload, 2, b"y" * 1000, None, lambda n: None)
    assert hashed == []
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert s3.S3Target("s3://bucket", region="us-east-1").signs_payload is False  # AWS itself: https


def test_one_target_alone_reads_the_artifact_once(tmp_path, s3_env, reads_of):
    big = random_file(tmp_path / "big.bin", 20)
    counter = reads_of(big)
    assert push(big, f"file://{tmp_path / 'store'}").code == 0
    assert counter["bytes"] == big.stat().st_size  # the copy's own read gives the report's digest


def test_a_directory_artifact_goes_to_both_targets_file_by_file(tmp_path, s3_server, s3_env):
    folder = tmp_path / "model"
    (folder / "weights").mkdir(parents=True)
    random_file(folder / "weights" / "a.bin", 17)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "manifest.json").write_text('{"name": "big"}')
    bucket, store = s3_env(), tmp_path / "store"
    result = push(folder, f"s3://{bucket}", f"file://{store}")
    assert result.code == 0, result.stderr
    for rel in ("weights/a.bin", "empty.txt", "manifest.json"):
        body = s3_server.client("s3").get_object(Bucket=bucket, Key=f"big/1/{rel}")["Body"].read()
        assert body == (folder / rel).read_bytes() == (store / "big" / "1" / rel).read_bytes()


def test_a_target_failing_mid_upload_leaves_the_other_whole_and_exits_7(tmp_path, s3_server, s3_env):
    """The directory target hits the file size limit 8 MB into its copy (EFBIG): the S3 target,
    fed by the same read, still gets every byte and its index entry; the directory keeps no
    partial file and no entry."""
    big = random_file(tmp_path / "big.bin", 36)
    bucket, store = s3_env(), tmp_path / "store"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 * MB, 8 * MB))

    proc = subprocess.run([sys.executable, "-m", "mlship", "--json", "push", str(big), "--name", "big",
                           "--artifact-version", "1", "--to", f"s3://{bucket}", "--to", f"file://{store}"],
                          capture_output=True, text=True, env=dict(os.environ), preexec_fn=limit, timeout=300)
    assert proc.returncode == 7, proc.stderr
    assert proc.stderr.count("\n") == 1 and "push failed for 1 of 2 targets" in proc.stderr
    rows = {r["target"]: r for r in __import__("json").loads(proc.stdout)["results"]}
    assert rows[f"s3://{bucket}"]["status"] == "pushed"
    assert rows[f"file://{store}"]["status"] == "failed" and "File too large" in rows[f"file://{store}"]["error"]
    pulled = run("pull", "big:1", "--from", f"s3://{bucket}", "-o", str(tmp_path / "back"))
    assert pulled.code == 0, pulled.stderr
    assert sha256(tmp_path / "back" / "big.bin") == sha256(big)
    assert [p.name for p in (store / "big" / "1").iterdir()] == []  # no partial copy under any name
    assert not (store / "big" / "index.json").exists()


def test_shared_read_hands_every_reader_the_same_bytes_and_hashes_once(tmp_path):
    path = random_file(tmp_path / "f.bin", 5, extra=7)
    shared = SharedRead(path, 2, block=MB, window=8 * MB)  # one thread reads both: no waiting
    a, b = shared.reader(0), shared.reader(1)
    first_a, first_b = a.read(MB), b.read(MB)
    assert first_a is first_b  # one bytes object, no copy per reader
    assert shared.hexdigest() is None  # not at the end yet
    rest_a = a.read()
    assert a.read() == b""
    assert first_a + rest_a == path.read_bytes()
    assert b.read(100) + b.read() == path.read_bytes()[MB:]
    assert shared.hexdigest() == sha256(path)


def test_shared_read_holds_a_reader_back_until_the_slowest_catches_up_or_leaves(tmp_path):
    path = random_file(tmp_path / "f.bin", 8)
    shared = SharedRead(path, 2, block=MB, window=2 * MB)
    fast, slow = shared.reader(0), shared.reader(1)
    assert len(fast.read(MB)) == MB and len(fast.read(MB)) == MB  # two blocks ahead: at the window
    got = []
    ahead = threading.Thread(target=lambda: got.append(fast.read(MB)))
    ahead.start()
    ahead.join(0.5)
    assert ahead.is_alive() and not got  # waits for the slow reader
    assert len(shared._blocks) <= 2
    slow.read(MB)
    ahead.join(30)
    assert not ahead.is_alive() and len(got[0]) == MB
    blocked = threading.Thread(target=lambda: got.append(fast.read()))
    blocked.start()
    blocked.join(0.5)
    assert blocked.is_alive()
    slow.close()  # its upload failed: the fast reader goes on alone
    blocked.join(30)
    assert not blocked.is_alive() and b"".join(got) == path.read_bytes()[2 * MB:]
    assert shared.hexdigest() == sha256(path) and shared._fh is None  # read whole: the file is closed
    fast.close()
    assert shared._blocks == {}  # every reader left: nothing is held


def test_shared_read_refuses_a_file_that_shrank_while_pushed(tmp_path):
    path = random_file(tmp_path / "f.bin", 3)
    shared = SharedRead(path, 2, block=MB)
    reader = shared.reader(0)
    reader.read(MB)
    os.truncate(path, MB + 10)
    with pytest.raises(OSError, match="changed while it was being pushed"):
        reader.read()
    assert shared.hexdigest() is None


def test_a_target_that_stops_reading_early_is_a_failure_not_a_recorded_version(tmp_path):
    """A target whose upload_stream returns before the end (a buggy plugin) cannot record a
    digest of bytes it never stored; the other target still gets the whole file."""
    from mlship.errors import ServiceError
    from mlship.targets.file import FileTarget
    from mlship.targets.service import SharedUploads

    class Hasty(FileTarget):
        def upload_stream(self, key, source, size, progress, *, sharing=1):
            source.read(MB)  # and stops there, claiming success

    path = random_file(tmp_path / "f.bin", 3)
    hasty, whole = Hasty(str(tmp_path / "hasty")), FileTarget(str(tmp_path / "whole"))
    shared = SharedUploads([(path, "f.bin")], 2)
    shared.attach([hasty, whole])
    outcome = {}

    def push(target, upload):
        try:
            outcome[id(target)] = upload("v/f.bin", path, lambda n: None)
        except ServiceError as exc:
            outcome[id(target)] = exc
        finally:
            shared.leave(target)

    threads = [threading.Thread(target=push, args=(t, shared.uploader(t))) for t in (hasty, whole)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(outcome[id(hasty)], ServiceError) and "stopped after 1048576 of" in outcome[id(hasty)].message
    assert outcome[id(whole)] == sha256(path)
    assert (tmp_path / "whole" / "v" / "f.bin").read_bytes() == path.read_bytes()


def test_a_prefetch_reads_and_hashes_ahead_and_readers_get_those_very_bytes(tmp_path):
    path = random_file(tmp_path / "f.bin", 6, extra=3)
    shared = SharedRead(path, 1, block=MB)
    assert shared.prefetch(4 * MB) == 4 * MB  # before any reader: four whole blocks, hashed
    held = dict(shared._blocks)
    assert sorted(held) == [0, 1, 2, 3] and shared._loaded == 4 * MB
    reader = shared.reader(0)
    assert [reader.read(MB) is held[n] for n in range(4)] == [True] * 4  # no second read, no copy
    assert shared.prefetch(4 * MB) == 0  # a reader has started: prefetching is over
    assert reader.read() == path.read_bytes()[4 * MB:]
    assert shared.hexdigest() == sha256(path)
    reader.close()
    assert shared._blocks == {} and shared._fh is None


def test_a_prefetch_that_fails_hands_its_failure_to_the_reader(tmp_path):
    path = random_file(tmp_path / "f.bin", 4)
    shared = SharedRead(path, 1, block=MB)
    shared.prefetch(MB)
    os.truncate(path, MB + 10)  # the file shrank while the targets were being opened
    with pytest.raises(OSError, match="changed while it was being pushed"):
        shared.prefetch(3 * MB)
    reader = shared.reader(0)
    assert len(reader.read(MB)) == MB  # what was read whole before is still good
    with pytest.raises(OSError, match="changed while it was being pushed"):
        reader.read(MB)
    assert shared.hexdigest() is None


def test_a_push_refused_before_its_uploads_lets_its_prefetch_go(tmp_path, monkeypatch):
    """A push that stops after the prefetch started (the version exists with other content)
    holds no blocks and no open file afterwards, and wrote nothing new."""
    from mlship.targets import service
    from mlship.targets.hashing import SharedRead as Real

    made = []

    class Tracked(Real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr("mlship.targets.hashing.SharedRead", Tracked)
    store = tmp_path / "store"
    (tmp_path / "a").mkdir()
    first = random_file(tmp_path / "a" / "big.bin", 0, extra=10)
    assert run("push", str(first), "--artifact-version", "1", "--to", f"file://{store}").code == 0
    before = sorted(p.relative_to(store).as_posix() for p in store.rglob("*"))
    (tmp_path / "b").mkdir()
    other = random_file(tmp_path / "b" / "big.bin", 40)
    made.clear()
    result = run("push", str(other), "--artifact-version", "1", "--to", f"file://{store}")
    assert result.code == 2 and "already exists with other content" in result.stderr, result.stderr
    assert len(made) == 1
    shared = made[0]
    deadline = time.monotonic() + 30
    while [t for t in threading.enumerate() if t.name == "mlship-prefetch"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "mlship-prefetch"]
    assert shared._blocks == {} and shared._fh is None and not any(shared._open)
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*")) == before
    assert service.SharedUploads.PREFETCH >= 16 * MB


def test_the_whole_digest_for_a_repeat_check_reuses_the_prefetch_and_keeps_its_blocks(tmp_path, monkeypatch):
    path = random_file(tmp_path / "f.bin", 6, extra=5)
    shared = SharedRead(path, 1, block=MB)
    shared.prefetch(2 * MB)
    want, size = sha256(path), path.stat().st_size
    counter = {"bytes": 0}
    real_open = pathlib.Path.open

    def counting_open(self, *args, **kwargs):
        fh = real_open(self, *args, **kwargs)
        return CountingFile(fh, counter) if self == path else fh

    monkeypatch.setattr(pathlib.Path, "open", counting_open)
    assert shared.whole_digest() == want
    assert counter["bytes"] == size - 2 * MB  # the prefetched blocks are not read again
    monkeypatch.undo()
    assert shared.prefetch(4 * MB) == 0  # and prefetching is over
    reader = shared.reader(0)
    assert reader.read() == path.read_bytes()  # the upload, should it go on, reads from the same point
    assert shared.hexdigest() == sha256(path)


def test_a_repeat_push_hashes_what_the_prefetch_did_not(tmp_path, monkeypatch):
    """Pushing a version the target already holds reads the artifact once for its digest: the
    prefetched part is not hashed again, and nothing is uploaded."""
    from mlship.model import load

    art = random_file(tmp_path / "big.bin", 40)
    store = f"file://{tmp_path / 'store'}"
    assert run("push", str(art), "--artifact-version", "1", "--to", store).code == 0
    load._DIGESTS.clear()  # as a new process would start
    whole = []
    monkeypatch.setattr(load, "sha256_file", lambda p, chunk=1 << 20: whole.append(p) or sha256(p))
    result = run("--json", "push", str(art), "--artifact-version", "1", "--to", store)
    assert result.code == 0, result.stderr
    assert __import__("json").loads(result.stdout)["results"][0]["status"] == "skipped"
    assert whole == []  # the digest came from the shared read, not from a separate read of the file
    assert __import__("json").loads(result.stdout)["artifact"] == f"sha256:{sha256(art)}"
