"""One contract for every target (a directory, S3 on moto), plus hybrid pushes and S3 specifics."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest

from tests.support import run


@pytest.fixture
def target(artifact_target):
    return artifact_target


def artifact(tmp_path, name="bundle", content=b"weights-v1"):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "model.onnx").write_bytes(content * 1000)
    (folder / "manifest.json").write_text(json.dumps({"name": "bc", "content": content.decode()}))
    return folder


def push(path, *targets, version="1.0.0", extra=()):
    args = ["--json", "push", str(path), "--name", "bc", "--artifact-version", version, *extra]
    for t in targets:
        args += ["--to", t]
    return run(*args)


def test_push_is_idempotent_and_promote_then_pull_by_channel(tmp_path, target):
    v1 = artifact(tmp_path, "v1", b"one")
    first = push(v1, target)
    assert first.code == 0, first.stderr
    assert first.json()["results"][0]["status"] == "pushed"
    again = push(v1, target)
    assert again.json()["results"][0]["status"] == "skipped"
    assert push(artifact(tmp_path, "v2", b"two"), target, version="2.0.0").code == 0
    assert run("promote", "bc", "1.0.0", "--channel", "stable", "--to", target).code == 0
    pulled = run("pull", "bc@stable", "--from", target, "-o", str(tmp_path / "out"))
    assert pulled.code == 0, pulled.stderr
    assert (tmp_path / "out" / "model.onnx").read_bytes() == (v1 / "model.onnx").read_bytes()
    latest = run("pull", "bc", "--from", target, "-o", str(tmp_path / "latest"))
    assert latest.code == 0 and (tmp_path / "latest" / "model.onnx").read_bytes() == b"two" * 1000
    assert run("promote", "bc", "9.9.9", "--channel", "stable", "--to", target).code == 2


def test_same_version_with_other_content_is_refused(tmp_path, target):
    assert push(artifact(tmp_path, "a", b"aaa"), target).code == 0
    other = push(artifact(tmp_path, "b", b"bbb"), target)
    assert other.code == 2 and "already exists with other content" in other.stderr  # not 7: the store is fine


def test_dry_run_uploads_nothing(tmp_path, target):
    result = push(artifact(tmp_path), target, extra=["--dry-run"])
    assert result.code == 0 and result.json()["results"][0]["status"] == "would push"
    assert run("pull", "bc", "--from", target, "-o", str(tmp_path / "o")).code == 2  # nothing there


def test_hybrid_push_reports_each_target_and_fails_with_7(tmp_path, target):
    bad = f"file://{tmp_path / 'readonly'}"
    (tmp_path / "readonly").mkdir()
    (tmp_path / "readonly" / "bc").write_text("a file where a directory must go")
    result = push(artifact(tmp_path), target, bad)
    assert result.code == 7
    statuses = {r["target"]: r["status"] for r in result.json()["results"]}
    assert statuses[target] == "pushed" and statuses[bad] == "failed"
    assert run("pull", "bc:1.0.0", "--from", target, "-o", str(tmp_path / "o")).code == 0


def test_corrupt_object_is_caught_on_pull(tmp_path):
    store = tmp_path / "store"
    assert push(artifact(tmp_path), f"file://{store}").code == 0
    (store / "bc" / "1.0.0" / "model.onnx").write_bytes(b"tampered")
    result = run("pull", "bc:1.0.0", "--from", f"file://{store}", "-o", str(tmp_path / "out"))
    assert result.code == 3 and "corrupt or tampered" in result.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_large_artifact_goes_up_in_parts_and_comes_back_identical(tmp_path, s3_server, monkeypatch):
    bucket = f"big-{uuid.uuid4().hex[:8]}"
    client = s3_server.client("s3")
    client.create_bucket(Bucket=bucket)
    for key, value in {"AWS_ENDPOINT_URL_S3": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1 << 20))
    assert run("push", str(big), "--name", "big", "--artifact-version", "1", "--to", f"s3://{bucket}").code == 0
    head = client.head_object(Bucket=bucket, Key="big/1/big.bin")
    assert head["ETag"].strip('"').endswith(f"-{200 // 16 + 1}")  # 16 MB parts
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert run("pull", "big:1", "--from", f"s3://{bucket}", "-o", str(tmp_path / "back")).code == 0
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "back" / "big.bin") == digest(big)


@pytest.mark.parametrize("case,code,message", [
    ("scheme", 2, "unknown target scheme 'ftp'"),
    ("bucket", 7, "the bucket does not exist"),
    ("credentials", 7, "access refused"),
    ("artifact", 3, "artifact not found"),
])
def test_bad_input_names_target_and_cause(tmp_path, s3_server, monkeypatch, case, code, message):
    for key, value in {"AWS_ENDPOINT_URL_S3": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    path, target = artifact(tmp_path), f"s3://nope-{uuid.uuid4().hex[:6]}"
    if case == "scheme":
        target = "ftp://host/models"
    elif case == "credentials":
        bucket = f"locked-{uuid.uuid4().hex[:6]}"
        s3_server.client("s3").create_bucket(Bucket=bucket)
        s3_server.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
        target = f"s3://{bucket}"
    elif case == "artifact":
        path = tmp_path / "absent"
    result = push(path, target)
    assert result.code == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_store_stopped_mid_upload_leaves_the_target_clean(tmp_path):
    import subprocess
    import sys

    from moto.server import ThreadedMotoServer

    from tests.harness.ports import wait_until
    from tests.harness.services import start_moto_server

    server = start_moto_server()
    client = server.client("s3")
    client.create_bucket(Bucket="fragile")
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(300):
            fh.write(os.urandom(1 << 20))
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.Popen([sys.executable, "-m", "mlship", "push", str(big), "--name", "big", "--artifact-version",
                             "1", "--to", "s3://fragile"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    restarted = None
    try:
        wait_until(lambda: client.list_multipart_uploads(Bucket="fragile").get("Uploads"), 60, "a multipart upload",
                   interval=0.02)
        server.stop()  # the store goes away in the middle of the parts
        # Until the push has given up on its parts and is cleaning up (it lists the bucket's
        # multipart uploads), the port answers 503: an event, not a guess at how long that takes.
        _answer_503_until_cleanup(server.port)
        restarted = ThreadedMotoServer(ip_address="127.0.0.1", port=server.port, verbose=False)
        restarted.start()
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 7, err
        assert "s3://fragile: upload of big/1/big.bin failed" in err
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="fragile").get("Contents", [])]
        assert keys == []  # no object under the final key, no index entry
        assert client.list_multipart_uploads(Bucket="fragile").get("Uploads", []) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        if restarted is not None:
            restarted.stop()


def _answer_503_until_cleanup(port: int, timeout_s: float = 120) -> None:
    """Serve 503 on `port` until a client lists multipart uploads (the push's cleanup step)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    cleaning = threading.Event()

    class Unavailable(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if self.command == "GET" and "uploads" in self.path:
                cleaning.set()
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    stand_in = ThreadingHTTPServer(("127.0.0.1", port), Unavailable)
    thread = threading.Thread(target=stand_in.serve_forever, daemon=True)
    thread.start()
    try:
        assert cleaning.wait(timeout_s), "the push never started cleaning up its multipart upload"
    finally:
        stand_in.shutdown()
        stand_in.server_close()
        thread.join()

