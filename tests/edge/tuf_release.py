"""A TUF-signed release pipeline for tests: role keys, mlship.yaml with `signing:`, build, push, promote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.support import MODEL, run

NAME = "bc"
KEYS = ("root1", "root2", "targets", "snapshot", "timestamp")


def make_keys(directory: Path) -> Path:
    for key in KEYS:
        assert run("keys", "generate", "--dir", str(directory), "--name", key).code == 0
    return directory


def write_config(project: Path, key_dir: Path, **signing) -> Path:
    """mlship.yaml with every role keyed (root 2 of 2) plus `signing` overrides."""
    config = {"name": NAME, "signing": {
        "keys": {"root": [str(key_dir / "root1.key"), str(key_dir / "root2.key")],
                 "targets": [str(key_dir / "targets.key")], "snapshot": [str(key_dir / "snapshot.key")],
                 "timestamp": [str(key_dir / "timestamp.key")]},
        "threshold": {"root": 2}, **signing}}
    path = project / "mlship.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def build(dist: Path, version: str, keys: Path, model: Path = MODEL) -> Path:
    """A bundle signed with the targets key, built in `dist` (its versions store there too, not in the cwd)."""
    dist.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    os.chdir(dist)
    try:
        result = run("build", "--edge", str(model), "--name", NAME, "--model-version", version,
                     "--output-dir", str(dist), "--signing-key", str(keys / "targets.key"))
    finally:
        os.chdir(here)
    assert result.code == 0, result.stderr
    return dist / f"{NAME}-{version}.mlbundle"


def build_two(directory: Path, keys: Path) -> dict[str, Path]:
    """Bundles 1.0.0 and 2.0.0 (another model)."""
    from tests import models

    v2 = models.logistic_classifier(directory / "v2.onnx")
    return {"1.0.0": build(directory / "dist", "1.0.0", keys), "2.0.0": build(directory / "dist", "2.0.0", keys, v2)}


def release(config: Path, target: str, bundle: Path, version: str, channel: str = "stable") -> None:
    """Push the bundle and point the channel at it, signed through `config`."""
    pushed = run("--config", str(config), "push", str(bundle), "--artifact-version", version, "--to", target)
    assert pushed.code == 0, pushed.stderr + pushed.stdout
    promoted = run("--config", str(config), "promote", NAME, version, "--channel", channel, "--to", target)
    assert promoted.code == 0, promoted.stderr


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, keys):
    return build_two(tmp_path_factory.mktemp("bundles"), keys)
