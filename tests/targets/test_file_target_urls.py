"""file:// target URLs: absolute, relative (file://./dir) and refused hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlship.errors import UsageError
from mlship.targets.file import FileTarget


def test_relative_file_urls_stay_relative():
    assert FileTarget("file://./share").root == Path("./share")
    assert FileTarget("file://../up/share").root == Path("../up/share")
    assert FileTarget("file:///mnt/models").root == Path("/mnt/models")
    assert FileTarget("share/models").root == Path("share/models")


def test_a_remote_host_is_refused():
    with pytest.raises(UsageError, match="file:// URLs name a local path"):
        FileTarget("file://nas.local/models")
