"""Servers shared by the serve tests."""

from __future__ import annotations

import pytest

from tests import models
from tests.serve.server_process import start_server
from tests.support import MODEL


@pytest.fixture(scope="module")
def example_server(tmp_path_factory):
    """The breast-cancer example served as variant 'canary' (read-only tests)."""
    tmp = tmp_path_factory.mktemp("serve")
    server = start_server(MODEL, tmp, "--variant", "canary", "--name", "bc", "--model-version", "2.0.0",
                          "--max-body-bytes", "200000")
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    return models.mixed_inputs(tmp_path_factory.mktemp("mixed") / "mixed.onnx")
