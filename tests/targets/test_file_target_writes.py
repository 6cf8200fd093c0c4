"""A file target's copy of a big artifact: written straight from an aligned buffer
(O_DIRECT) where the file system takes it, else through the page cache with the disk
writing while the push goes on; fsynced, renamed, the same bytes either way."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os

import pytest

from mlship.errors import ServiceError
from mlship.targets import file as file_target
from mlship.targets.file import FileTarget


def _source(tmp_path, mb: int, tail: int = 0):
    source = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as out:
        for _ in range(mb):
            out.write(block)
        out.write(os.urandom(tail))
    return source


def _record(monkeypatch) -> list[tuple[str, int, bool]]:
    """Every write (its size, whether O_DIRECT was on), writeback and fsync the file target makes."""
    calls: list[tuple[str, int, bool]] = []
    real_write, real_writeback, real_fsync = os.write, file_target.start_writeback, os.fsync

    def write(fd, data):
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        n = real_write(fd, data)
        calls.append(("write", n, direct))
        return n

    def writeback(fd):
        calls.append(("writeback", os.fstat(fd).st_size, False))
        real_writeback(fd)

    def fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_size, False))
        real_fsync(fd)

    monkeypatch.setattr(file_target.os, "write", write)
    monkeypatch.setattr(file_target, "start_writeback", writeback)
    monkeypatch.setattr(file_target.os, "fsync", fsync)
    return calls


def _takes_direct(folder) -> bool:
    """Whether the file system under `folder` takes O_DIRECT (tmpfs before Linux 6.6 does not)."""
    fd = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT)
    try:
        return file_target._set_direct(fd, True)
    finally:
        os.close(fd)
        os.unlink(folder / "probe")


def _check_copy(tmp_path, source, digest):
    copy = tmp_path / "share" / "m" / "1" / "big.bin"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert [p.name for p in copy.parent.iterdir()] == ["big.bin"]  # no partial file left beside it
    assert oct(copy.stat().st_mode & 0o777) == oct(0o666 & ~file_target._umask())


def test_a_big_copy_goes_straight_to_disk_in_aligned_writes_and_its_tail_through_the_cache(tmp_path, monkeypatch):
    source = _source(tmp_path, 40, tail=12345)  # 40 MB and a tail that is no whole 4 KB block
    calls = _record(monkeypatch)
    digest = FileTarget(f"file://{tmp_path / 'share'}").upload("m/1/big.bin", source, lambda n: None)
    _check_copy(tmp_path, source, digest)
    writes = [c for c in calls if c[0] == "write"]
    assert sum(n for _, n, _ in writes) == source.stat().st_size
    assert calls[-1] == ("fsync", source.stat().st_size, False)  # the fsync comes after the last byte
    if _takes_direct(tmp_path):
        direct = [n for _, n, d in writes if d]
        assert sum(direct) == (40 << 20) + 12345 - 12345 % 4096  # every whole 4 KB block went direct
        assert all(n % file_target.DIRECT_ALIGN == 0 and n <= file_target.DIRECT_BUFFER for n in direct)
        assert not writes[-1][2] and writes[-1][1] == 12345 % 4096  # the tail: buffered, last
        assert [c[0] for c in calls].count("writeback") == 0
    else:  # no O_DIRECT here: buffered, with writeback as it goes
        assert not any(d for _, _, d in writes)
        assert [c[0] for c in calls].count("writeback") == 1


def test_without_direct_writes_a_big_copy_is_written_back_as_it_goes_then_fsynced(tmp_path, monkeypatch):
    source = _source(tmp_path, 80)  # 80 MB: written back after each 32 MB, then the rest at the fsync
    monkeypatch.setattr(file_target, "_set_direct", lambda fd, on: False)
    calls = _record(monkeypatch)
    digest = FileTarget(f"file://{tmp_path / 'share'}").upload("m/1/big.bin", source, lambda n: None)
    steps = [c for c in calls if c[0] != "write"]
    assert [c[0] for c in steps] == ["writeback", "writeback", "fsync"]
    assert steps[0][1] >= file_target.WRITEBACK_BYTES and steps[1][1] >= 2 * file_target.WRITEBACK_BYTES
    assert steps[-1][1] == 80 << 20
    _check_copy(tmp_path, source, digest)


def test_a_direct_write_the_file_system_refuses_goes_through_the_cache_with_the_same_bytes(tmp_path, monkeypatch):
    source = _source(tmp_path, 20, tail=100)
    direct: dict[int, bool] = {}
    monkeypatch.setattr(file_target, "_set_direct", lambda fd, on: direct.update({fd: on}) or True)  # it says yes,
    real_write = os.write  # then refuses every direct write (as a file system with other alignment rules would)
    refused = []

    def write(fd, data):
        if direct.get(fd):
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(file_target.os, "write", write)
    digest = FileTarget(f"file://{tmp_path / 'share'}").upload("m/1/big.bin", source, lambda n: None)
    assert refused == [file_target.DIRECT_BUFFER]  # the first buffer was tried direct, refused; then none
    assert list(direct.values()) == [False]  # O_DIRECT was turned off again
    _check_copy(tmp_path, source, digest)


def test_a_failing_disk_leaves_no_partial_copy_and_says_why(tmp_path, monkeypatch):
    source = _source(tmp_path, 20)

    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_target.os, "write", write)
    target = FileTarget(f"file://{tmp_path / 'share'}")
    with pytest.raises(ServiceError, match="cannot write m/1/big.bin: No space left on device"):
        target.upload("m/1/big.bin", source, lambda n: None)
    assert list((tmp_path / "share" / "m" / "1").iterdir()) == []
