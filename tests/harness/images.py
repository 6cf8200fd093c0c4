"""A local Python 3.11 base image on the test engine (debootstrap + docker import)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BASE_TAG = "mlship-test/python:3.11-slim-bookworm"


@pytest.fixture(scope="session")
def python_base_image(docker_engine) -> str:
    """Tag of a Debian bookworm image with python3, pip and venv (cached as a rootfs tarball)."""
    if shutil.which("debootstrap") is None:
        message = "debootstrap is not installed (apt-get install debootstrap)"
        if os.environ.get("MLSHIP_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    script = Path(__file__).resolve().parents[1] / "images" / "make-base.sh"
    proc = subprocess.run(["bash", str(script), BASE_TAG], env=docker_engine.env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return BASE_TAG


@pytest.fixture
def engine_env(docker_engine, monkeypatch):
    """Point the docker SDK (and so mlship) at the test engine."""
    for key, value in docker_engine.env().items():
        if key.startswith("DOCKER"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    return docker_engine
