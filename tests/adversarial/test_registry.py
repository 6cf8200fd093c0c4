"""Registry credentials stay with the registry they are for (issue 15, item 3).

The OCI client (`build --image --builder oci`) sends `Authorization` only to the
origin (scheme, host, port) the credentials were issued for: not to an upload
`Location` or a blob redirect on another origin, not in answer to another
origin's challenge, not to a token realm that is not http(s). Uploads handed to
another origin (object storage) carry on there without credentials, and base
images on registries that want a Bearer token are downloaded with one.
Real servers only: a docker-registry behind tests/harness/split_registry.py.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from mlship.errors import ServiceError
from tests.harness.services import http_request
from tests.harness.split_registry import TOKEN, start_split_registry
from tests.support import MODEL, run

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
USER, PASSWORD = "ci", "s3cret"


# ------------------------------------------------------------------ a tiny base image

def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_image() -> dict:
    """One small layer, a config without PYTHON_VERSION and an OCI manifest (all deterministic)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = b"a tiny base for registry attack tests\n"
        info = tarfile.TarInfo("etc/mlship-tiny-base")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/bin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(raw.getvalue())]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": _sha(layer), "size": len(layer)}]}).encode()
    return {"layer": layer, "config": config, "manifest": manifest}


def write_layout(directory: Path) -> str:
    """The tiny image as an OCI layout; its `oci:` reference."""
    image = tiny_image()
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in image.values():
        (blobs / _sha(data).split(":")[1]).write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST_TYPE, "digest": _sha(image["manifest"]), "size": len(image["manifest"])}]}))
    return f"oci:{directory}"


def push_upstream(address: str, repository: str, tag: str) -> dict:
    """Put the tiny image straight into the (credential-free) upstream registry."""
    image = tiny_image()
    for data in (image["layer"], image["config"]):
        started = http_request("POST", f"http://{address}/v2/{repository}/blobs/uploads/", data=b"")
        assert started.status == 202, started.body
        location = started.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = http_request("PUT", f"{location}{sep}digest={_sha(data)}", data=data,
                            headers={"Content-Type": "application/octet-stream"})
        assert done.status == 201, done.body
    put = http_request("PUT", f"http://{address}/v2/{repository}/manifests/{tag}", data=image["manifest"],
                       headers={"Content-Type": MANIFEST_TYPE})
    assert put.status == 201, put.body
    return image


# ------------------------------------------------------------------ fixtures and checks

@pytest.fixture
def project(tmp_path, monkeypatch):
    """A model project with the daemonless builder, Docker credentials for no host yet and an empty blob cache."""
    (tmp_path / "model.onnx").write_bytes(MODEL.read_bytes())
    (tmp_path / "mlship.yaml").write_text("name: breast-cancer\nversion: 1.0.0\nmodel: model.onnx\n"
                                          "build:\n  image: {builder: oci}\n")
    (tmp_path / "docker-config").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("MLSHIP_BLOB_CACHE", str(tmp_path / "blob-cache"))  # base layers are downloaded again
    return tmp_path


@pytest.fixture
def split_registry(oci_registry, project):
    """start(**options) -> a split registry in front of `oci_registry`, with Docker credentials for its front."""
    started = []

    def start(**options):
        split = start_split_registry(oci_registry.address, user=USER, password=PASSWORD, **options)
        started.append(split)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (project / "docker-config" / "config.json").write_text(json.dumps({"auths": {split.front: {"auth": auth}}}))
        return split

    yield start
    for split in started:
        split.stop()


def oci(project: Path, *args: str):
    return run("-c", str(project / "mlship.yaml"), "--json", "build", "--image", *args)


def versions(project: Path) -> list:
    return run("-c", str(project / "mlship.yaml"), "--json", "versions", "list").json()["versions"]


def authorization(received) -> str | None:
    return next((v for k, v in received.headers.items() if k.lower() == "authorization"), None)


def assert_storage_saw_no_credentials(split, realm_there: bool = False) -> None:
    """No request to the storage origin carried credentials (but its token realm, when the challenge names it)."""
    leaked = [(r.method, r.path, authorization(r)) for r in split.received
              if r.headers.get("Host") == split.storage and authorization(r) and not (realm_there and r.role == "token")]
    assert leaked == [], f"credentials reached {split.storage}: {leaked}"


def manifest_status(oci_registry, repository: str, tag: str) -> int:
    return http_request("GET", f"{oci_registry.url}/v2/{repository}/manifests/{tag}",
                        headers={"Accept": MANIFEST_TYPE}).status


def assert_refused(result, *phrases: str) -> None:
    """Exit 7 with one line on stderr that says why."""
    assert result.code == 7, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


# ------------------------------------------------------------------ uploads

@pytest.mark.parametrize("bearer", [False, True], ids=["basic", "bearer"])
@pytest.mark.parametrize("other", ["port", "name"])
def test_upload_on_another_origin_continues_without_credentials(split_registry, project, oci_registry, tmp_path,
                                                                bearer, other):
    """The registry hands every upload to storage on another port (or to itself under another host name):
    the push completes there, and not one request to that origin carries the credentials."""
    split = split_registry(bearer=bearer)
    if other == "name":
        split.storage = f"localhost:{split.front.rsplit(':', 1)[1]}"  # same server and port, another origin
    result = oci(project, "--base", write_layout(tmp_path / "base"), "--push", f"registry://{split.front}/ml/bc")
    assert result.code == 0, result.stderr
    uploads = [r for r in split.by("storage") if r.method in ("PATCH", "PUT") and "/blobs/uploads/" in r.path]
    assert len([r for r in uploads if r.method == "PUT"]) == 5  # base, deps, model, config layers; image config
    assert_storage_saw_no_credentials(split)
    expected = f"Bearer {TOKEN}" if bearer else "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert authorization(split.by("front")[-1]) == expected  # the manifest PUT: credentials went where they belong
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 200
    [record] = versions(project)
    assert record["pushed"][0]["digest"] == result.json()["digest"]


def test_token_realm_on_another_host_gets_the_basic_credentials(split_registry, project, oci_registry, tmp_path):
    """The challenge names a realm on another origin: that is where the credentials are meant to go (Docker Hub's
    auth.docker.io); the token then goes to the registry only."""
    split = split_registry(bearer=True)
    split.realm = f"http://{split.storage}/token"
    result = oci(project, "--base", write_layout(tmp_path / "base"), "--push", f"registry://{split.front}/ml/bc")
    assert result.code == 0, result.stderr
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert [(r.headers["Host"], authorization(r)) for r in split.by("token")] == [(split.storage, basic)]
    assert all(authorization(r) in (None, f"Bearer {TOKEN}") for r in split.by("front"))
    assert len([r for r in split.by("storage") if r.method == "PUT"]) == 5
    assert_storage_saw_no_credentials(split, realm_there=True)
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 200


HOSTILE_UPLOADS = {
    # scheme is not http(s): http.client would still have spoken HTTP to host:port, credentials included
    "ftp-scheme": ({"upload_location": lambda split: lambda tail: f"ftp://{split.storage}{tail}"},
                   "not an http(s) URL"),
    "file-scheme": ({"upload_location": lambda split: lambda tail: "file:///etc/passwd"}, "not an http(s) URL"),
    # user info hides the real host (http://FRONT@STORAGE/…): refused rather than parsed two ways
    "userinfo": ({"upload_location": lambda split: lambda tail: f"http://{split.front}@{split.storage}{tail}"},
                 "user info"),
    # the other origin fishes for credentials with a challenge of its own
    "basic-challenge": ({"storage_challenge": lambda split: 'Basic realm="storage"'}, "asked for credentials"),
    "bearer-challenge": ({"storage_challenge": lambda split: f'Bearer realm="http://{split.storage}/token",'
                                                             'service="evil",scope="repository:ml/bc:push"'},
                         "asked for credentials"),
}


@pytest.mark.parametrize("attack", list(HOSTILE_UPLOADS))
def test_hostile_upload_location_gets_no_credentials(split_registry, project, oci_registry, tmp_path, attack):
    setters, phrase = HOSTILE_UPLOADS[attack]
    split = split_registry()
    for name, make in setters.items():
        setattr(split, name, make(split))
    result = oci(project, "--base", write_layout(tmp_path / "base"), "--push", f"registry://{split.front}/ml/bc")
    assert_refused(result, phrase, split.front)
    assert_storage_saw_no_credentials(split)
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 404
    assert versions(project) == []


# ------------------------------------------------------------------ token realms

@pytest.mark.parametrize("realm", ["ftp://{storage}/token", "file:///etc/passwd", "", "//{storage}/token"])
def test_token_realm_that_is_not_http_gets_no_credentials(split_registry, project, oci_registry, tmp_path, realm):
    split = split_registry(bearer=True)
    split.realm = realm.format(storage=split.storage)
    result = oci(project, "--base", write_layout(tmp_path / "base"), "--push", f"registry://{split.front}/ml/bc")
    assert_refused(result, "token realm", split.front)
    assert split.by("storage") == [] and split.by("token") == []  # no one was asked for a token
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 404
    assert versions(project) == []


# ------------------------------------------------------------------ downloads

@pytest.mark.parametrize("redirect", [False, True], ids=["direct", "redirected"])
def test_base_from_a_token_registry_is_downloaded_with_a_token(split_registry, project, oci_registry, redirect):
    """Docker Hub style: 401 + Bearer challenge for manifests and blobs; blob reads may be redirected to
    storage on another origin, which gets no credentials."""
    image = push_upstream(oci_registry.address, "base/tiny", "1")
    split = split_registry(bearer=True)
    split.redirect_blobs = redirect
    out = project / "out"
    result = oci(project, "--base", f"registry://{split.front}/base/tiny:1", "--output", str(out))
    assert result.code == 0, result.stderr
    layer = out / "blobs" / "sha256" / _sha(image["layer"]).split(":")[1]
    assert layer.read_bytes() == image["layer"]  # the base layer arrived (digest-checked) and is in the image
    manifest = json.loads((out / "blobs" / "sha256" / result.json()["digest"].split(":")[1]).read_bytes())
    assert manifest["layers"][0]["digest"] == _sha(image["layer"])
    tokens = split.by("token")
    assert tokens and all(authorization(t) == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                          for t in tokens)
    blob_reads = [r for r in split.by("front") if r.method == "GET" and "/blobs/" in r.path]
    assert {authorization(r) for r in blob_reads} >= {f"Bearer {TOKEN}"}
    assert len([r for r in split.by("storage") if r.method == "GET"]) == (2 if redirect else 0)
    assert_storage_saw_no_credentials(split)


@pytest.mark.parametrize("location, phrase", [("file:///etc/passwd", "not an http(s) URL"),
                                              ("ftp://{storage}/blob", "not an http(s) URL"),
                                              ("http://{front}@{storage}/b", "user info")])
def test_hostile_blob_redirect_is_refused(split_registry, project, oci_registry, location, phrase):
    push_upstream(oci_registry.address, "base/tiny", "1")
    split = split_registry(bearer=True)
    split.redirect_blobs = True
    split.blob_location = location.format(storage=split.storage, front=split.front)
    out = project / "out"
    result = oci(project, "--base", f"registry://{split.front}/base/tiny:1", "--output", str(out))
    assert_refused(result, "gave a redirect", phrase, split.front)
    assert_storage_saw_no_credentials(split)
    assert not out.exists()


# ------------------------------------------------------------------ the rules themselves

@pytest.mark.parametrize("a, b, same", [
    ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/x?y", True),
    ("https://Registry.Example:443/v2/", "https://registry.example/v2/", True),  # default port, case
    ("http://registry.example/v2/", "http://registry.example:80/z", True),
    ("https://registry.example/v2/", "http://registry.example/v2/", False),  # scheme
    ("http://127.0.0.1:5000/", "http://127.0.0.1:5001/", False),  # port
    ("http://127.0.0.1:5000/", "http://localhost:5000/", False),  # host name
    ("https://registry.example/", "https://registry.example.evil/", False),
])
def test_same_origin_compares_scheme_host_and_port(a, b, same):
    from mlship.registry.client import same_origin

    assert same_origin(a, b) is same


@pytest.mark.parametrize("url", ["http://auth.registry.example/token", "ftp://auth.registry.example/t",
                                 "file:///etc/passwd", "javascript:alert(1)", "https://u:p@auth.example/t",
                                 "https://auth.example:99999/t", "https:///t"])
def test_plain_http_or_odd_urls_off_loopback_are_refused(url, monkeypatch):
    """Credentials never go over plain HTTP to a host that is not loopback or listed as insecure."""
    from mlship.registry.client import check_url

    monkeypatch.delenv("MLSHIP_INSECURE_REGISTRIES", raising=False)
    with pytest.raises(ServiceError) as caught:
        check_url(url, "a token realm", "registry.example")
    assert caught.value.exit_code == 7 and "registry.example" in str(caught.value)


def test_plain_http_is_allowed_to_loopback_and_listed_hosts(monkeypatch):
    from mlship.registry.client import check_url

    monkeypatch.setenv("MLSHIP_INSECURE_REGISTRIES", "auth.lab:8080")
    for url in ("http://127.0.0.1:5000/token", "http://localhost/t", "http://auth.lab:8080/t",
                "https://auth.registry.example/token"):
        check_url(url, "a token realm", "registry.example")
