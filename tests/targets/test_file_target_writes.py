"""A file target's copy of a big artifact: the disk starts writing it while the
push goes on, not all at the final fsync."""

from __future__ import annotations

import hashlib
import os

from mlship.targets import file as file_target
from mlship.targets.file import FileTarget


def test_a_big_copy_is_written_back_as_it_goes_then_fsynced(tmp_path, monkeypatch):
    source = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as out:
        for _ in range(80):  # 80 MB: written back after each 32 MB, then the rest at the fsync
            out.write(block)
    calls: list[tuple[str, int]] = []
    real_writeback, real_fsync = file_target.start_writeback, os.fsync

    def writeback(fd):
        calls.append(("writeback", os.fstat(fd).st_size))
        real_writeback(fd)

    def fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    monkeypatch.setattr(file_target, "start_writeback", writeback)
    monkeypatch.setattr(file_target.os, "fsync", fsync)
    target = FileTarget(f"file://{tmp_path / 'share'}")
    digest = target.upload("m/1/big.bin", source, lambda n: None)
    assert [c[0] for c in calls] == ["writeback", "writeback", "fsync"]
    assert calls[0][1] >= file_target.WRITEBACK_BYTES and calls[1][1] >= 2 * file_target.WRITEBACK_BYTES
    assert calls[-1][1] == 80 << 20  # the fsync comes after the last byte
    copy = tmp_path / "share" / "m" / "1" / "big.bin"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert [p.name for p in copy.parent.iterdir()] == ["big.bin"]  # no partial file left beside it

