"""`mlship init`: a commented, valid mlship.yaml; never overwrites silently."""

from __future__ import annotations

from mlship.config import load_config
from tests.support import MODEL, run


def test_init_records_the_signature_and_validates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("init", "--model", str(MODEL))
    assert result.code == 0
    text = (tmp_path / "mlship.yaml").read_text()
    assert "input  X: tensor(float) [?, 30]" in text
    assert "output probabilities: tensor(float) [?, 2]" in text
    assert "mean_radius" in text
    cfg = load_config(tmp_path / "mlship.yaml", environ={})
    assert cfg.name == "breast-cancer"
    assert cfg.resolve(cfg.model).resolve() == MODEL.resolve()


def test_init_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "mlship.yaml"
    target.write_text("name: mine\n")
    result = run("init", "--output", str(target))
    assert result.code == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_text() == "name: mine\n"
    assert run("init", "--output", str(target), "--force").code == 0
    assert "name: my-model" in target.read_text()


def test_init_with_a_bad_model_writes_nothing(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n....")
    result = run("init", "--model", str(bad), "--output", str(tmp_path / "mlship.yaml"))
    assert result.code == 3
    assert list(tmp_path.iterdir()) == [bad]
