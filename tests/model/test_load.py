"""Loading models: every unusable file gets a one-line error and exit 3."""

from __future__ import annotations

import pytest

from mlship.errors import InvalidInputError
from mlship.model.load import load_model, sha256_file
from tests.models import invalid_graph
from tests.support import MODEL, run


def test_loads_the_example_with_its_digest():
    model = load_model(MODEL)
    assert model.sha256 == sha256_file(MODEL) and len(model.sha256) == 64
    assert model.size == MODEL.stat().st_size
    assert model.opsets["ai.onnx"] == 17


@pytest.mark.parametrize("make,expected", [
    (lambda p: p.write_bytes(MODEL.read_bytes()[: MODEL.stat().st_size // 2]), "truncated or corrupted"),
    (lambda p: p.write_bytes(MODEL.read_bytes()[:3000]), "truncated"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64), "it is a PNG image"),
    (lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 64), "zip archive"),
    (lambda p: p.write_bytes(b""), "model file is empty"),
    (lambda p: p.write_text("not a model at all, just some text\n" * 5), "not a readable ONNX model"),
    (lambda p: p.mkdir(), "not a file"),
])
@pytest.mark.parametrize("light", [False, True])  # light: parsed without the onnx package (predict)
def test_unusable_files(tmp_path, make, expected, light):
    path = tmp_path / "model.onnx"
    make(path)
    with pytest.raises(InvalidInputError) as info:
        load_model(path, light=light)
    assert expected in info.value.one_line()
    assert str(path) in info.value.one_line()


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="model file not found"):
        load_model(tmp_path / "absent.onnx")


@pytest.mark.parametrize("kind", ["truncated", "png", "checker"])
def test_cli_gives_one_line_and_exit_3(tmp_path, kind):
    path = tmp_path / "model.onnx"
    if kind == "truncated":
        path.write_bytes(MODEL.read_bytes()[:20000])
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    else:
        invalid_graph(path)
    result = run("check", str(path))
    assert result.code == 3
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr
    if kind == "checker":
        assert "fails the ONNX checker" in result.stderr


def test_a_light_load_parses_as_onnx_does_and_a_later_import_of_onnx_shares_its_class(tmp_path):
    """predict parses the model without `import onnx` (~25 ms); onnx imported afterwards in
    the same process must see the same ModelProto class, and check the model."""
    import subprocess
    import sys

    code = ("import sys; from mlship.model.load import load_model; "
            f"m = load_model({str(MODEL)!r}, light=True); before = 'onnx' in sys.modules; "
            "import onnx; onnx.checker.check_model(m.proto); "
            f"print(before, type(m.proto) is onnx.ModelProto, m.proto == onnx.load({str(MODEL)!r}), m.opsets['ai.onnx'], "
            "onnx.onnx_ml_pb2.ModelProto is onnx.ModelProto)")  # an ordinary import: the submodule attribute too
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True", "17", "True"]
