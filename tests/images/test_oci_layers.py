"""Reproducible layers, the dependencies tree and references, without any service."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zipfile

import pytest

from mlship.images.deps import PythonInfo, pruned, venv_entries
from mlship.images.layers import Entry, write_layer
from mlship.images.oci import python_of
from mlship.images.oci_base import split_reference
from tests.support import MODEL, run

ENTRIES = [Entry("opt/model/model.onnx", data=b"onnx"), Entry("opt/mlship/bin/run", data=b"#!/bin/sh\n",
                                                                 executable=True),
           Entry("opt/mlship/bin/python", "symlink", b"/usr/bin/python3")]


def members(path):
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_same_entries_give_the_same_bytes_in_any_order(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    one = write_layer(ENTRIES, tmp_path / "a.tar.gz")
    two = write_layer(list(reversed(ENTRIES)), tmp_path / "b.tar.gz")
    assert (one.digest, one.diff_id, one.size) == (two.digest, two.diff_id, two.size)
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    found = members(tmp_path / "a.tar.gz")
    assert [m.name for m in found] == ["opt", "opt/mlship", "opt/mlship/bin", "opt/mlship/bin/python",
                                       "opt/mlship/bin/run", "opt/model", "opt/model/model.onnx"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in found} == {(0, 0, "", "", 0)}
    assert {m.name: oct(m.mode) for m in found if not m.issym()}["opt/model/model.onnx"] == "0o644"
    assert {m.name: oct(m.mode) for m in found}["opt/mlship/bin/run"] == "0o755"
    head = (tmp_path / "a.tar.gz").read_bytes()[:10]
    assert head[3] == 0 and head[4:8] == b"\0\0\0\0"  # no file name, mtime 0
    assert one.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(
        (tmp_path / "a.tar.gz").read_bytes())).hexdigest()


def test_source_date_epoch_sets_mtimes(tmp_path, monkeypatch):
    plain = write_layer(ENTRIES, tmp_path / "a.tar.gz")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = write_layer(ENTRIES, tmp_path / "b.tar.gz")
    assert dated.digest != plain.digest
    assert {m.mtime for m in members(tmp_path / "b.tar.gz")} == {1700000000}


def _wheel(path, name="demo", scripts="[console_scripts]\ndemo = demo.cli:main\n"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{name}/cli.py", "def main():\n    return 0\n")
        zf.writestr(f"{name}/__pycache__/cli.cpython-311.pyc", b"x")
        zf.writestr(f"{name}/stub.pyi", "")
        zf.writestr(f"{name}-1.0.dist-info/entry_points.txt", scripts)
        zf.writestr(f"{name}-1.0.dist-info/RECORD", "stale\n")
        zf.writestr(f"{name}-1.0.data/scripts/tool", "#!python\nprint(1)\n")
    return path


def test_wheels_become_a_virtual_environment(tmp_path):
    entries = {e.path: e for e in venv_entries([_wheel(tmp_path / "demo-1.0-py3-none-any.whl")],
                                               PythonInfo("/usr/bin", "3.11.2"))}
    site = "opt/mlship/lib/python3.11/site-packages"
    assert f"{site}/demo/cli.py" in entries and f"{site}/demo/stub.pyi" not in entries
    assert all(entries[p].data != b"x" for p in entries if "__pycache__" in p)  # the wheel's own .pyc left out
    script = entries["opt/mlship/bin/demo"]
    assert script.executable and script.data.startswith(b"#!/opt/mlship/bin/python\n")
    assert b"from demo.cli import main" in script.data
    assert entries["opt/mlship/bin/tool"].data.startswith(b"#!/opt/mlship/bin/python\n")
    assert entries["opt/mlship/bin/python"].data == b"/usr/bin/python3"
    assert b"home = /usr/bin" in entries["opt/mlship/pyvenv.cfg"].data
    assert entries[f"{site}/demo-1.0.dist-info/INSTALLER"].data == b"mlship\n"
    record = entries[f"{site}/demo-1.0.dist-info/RECORD"].data.decode()
    assert "demo/cli.py,sha256=" in record and "../../../bin/demo,sha256=" in record and "stale" not in record


@pytest.mark.parametrize("path,gone", [
    ("opt/mlship/lib/python3.11/site-packages/numpy/_core/tests/test_a.py", True),
    ("opt/mlship/lib/python3.11/site-packages/numpy/f2py/x.py", True),
    ("opt/mlship/lib/python3.11/site-packages/onnx/reference/op.py", True),
    ("opt/mlship/lib/python3.11/site-packages/onnx/backend/test/x.py", True),
    ("opt/mlship/lib/python3.11/site-packages/pygments/lexers/rust.py", True),
    ("opt/mlship/lib/python3.11/site-packages/pygments/lexers/python.py", False),
    ("opt/mlship/lib/python3.11/site-packages/pip/__init__.py", True),
    ("opt/mlship/lib/python3.11/site-packages/onnx/backend/base.py", False),
    ("opt/mlship/lib/python3.11/site-packages/numpy/_core/multiarray.py", False),
    ("opt/mlship/lib/python3.11/site-packages/numpy/distutils/core.py", True),
    ("opt/mlship/lib/python3.11/site-packages/numpy/_core/include/numpy/ndarraytypes.h", True),
    ("opt/mlship/lib/python3.11/site-packages/numpy/_core/lib/libnpymath.a", True),
    ("opt/mlship/lib/python3.11/site-packages/onnx/defs/tensor/old.cc", True),
    ("opt/mlship/lib/python3.11/site-packages/uvloop/loop.pyx", True),
    ("opt/mlship/lib/python3.11/site-packages/onnxruntime/transformers/models/x.py", True),
    ("opt/mlship/lib/python3.11/site-packages/onnxruntime/quantization/quantize.py", True),
    ("opt/mlship/lib/python3.11/site-packages/onnxruntime/tools/x.py", True),
    ("opt/mlship/lib/python3.11/site-packages/onnxruntime/capi/_pybind_state.py", False),
    ("opt/mlship/lib/python3.11/site-packages/pydantic/v1/main.py", True),
    ("opt/mlship/lib/python3.11/site-packages/pydantic/main.py", False),
    ("opt/mlship/lib/python3.11/site-packages/onnxruntime/ThirdPartyNotices.txt", False),
])
def test_pruning_matches_the_dockerfile(path, gone):
    assert pruned(path) is gone


@pytest.mark.parametrize("ref,expected", [
    ("registry://127.0.0.1:5000/base/py:3.11", ("127.0.0.1:5000", "base/py", "3.11", False)),
    ("127.0.0.1:5000/base/py", ("127.0.0.1:5000", "base/py", "latest", False)),
    ("reg.example.com/a/b@sha256:" + "0" * 64, ("reg.example.com", "a/b", "sha256:" + "0" * 64, False)),
    ("python:3.11-slim", ("registry-1.docker.io", "library/python", "3.11-slim", False)),
    ("ecr://1.dkr.ecr.us-east-1.amazonaws.com/ml:1", ("1.dkr.ecr.us-east-1.amazonaws.com", "ml", "1", True)),
])
def test_base_references(ref, expected):
    assert split_reference(ref) == expected


def test_python_of_official_and_debian_bases():
    assert python_of({"config": {"Env": ["PYTHON_VERSION=3.11.9"]}}, "3.11") == PythonInfo("/usr/local/bin", "3.11.9")
    assert python_of({"config": {}}, "3.11") == PythonInfo("/usr/bin", "3.11")


def test_builder_choice_is_checked(tmp_path):
    (tmp_path / "model.onnx").write_bytes(MODEL.read_bytes())
    unknown = run("build", "--image", str(tmp_path / "model.onnx"), "--builder", "kaniko")
    assert unknown.code == 2 and "unknown image builder" in unknown.stderr and "docker, oci" in unknown.stderr
    nowhere = run("build", "--image", str(tmp_path / "model.onnx"), "--builder", "oci")
    assert nowhere.code == 2 and "--output" in nowhere.stderr
    engine_push = run("build", "--image", str(tmp_path / "model.onnx"), "--push", "registry://127.0.0.1:1/x")
    assert engine_push.code == 2 and "need --builder oci" in engine_push.stderr


def test_the_layer_carries_deterministic_bytecode_for_the_base_python(tmp_path):
    # A container's user cannot write /opt/mlship: without bytecode in the layer every start
    # compiled every module again. Unchecked hash-based .pyc, same bytes on every build.
    import importlib.util
    import marshal
    import sys

    wheel = _wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    here = PythonInfo("/usr/bin", f"{sys.version_info[0]}.{sys.version_info[1]}.0")
    tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
    site = f"opt/mlship/lib/python{here.minor}/site-packages"
    first = {e.path: e.data for e in venv_entries([wheel], here)}
    second = {e.path: e.data for e in venv_entries([wheel], here)}
    pyc = first[f"{site}/demo/__pycache__/cli.{tag}.pyc"]
    assert first == second
    assert pyc[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(pyc[4:8], "little") == 0b01  # hash, unchecked
    assert pyc[8:16] == importlib.util.source_hash(first[f"{site}/demo/cli.py"])
    namespace: dict = {}
    exec(marshal.loads(pyc[16:]), namespace)
    assert namespace["main"]() == 0
    assert f"{site}/demo/__pycache__/__init__.{tag}.pyc" in first
    # another minor version: no bytecode (this interpreter's would not load there)
    other = PythonInfo("/usr/bin", "3.99.1")
    assert not any("__pycache__" in p for p in (e.path for e in venv_entries([wheel], other)))
