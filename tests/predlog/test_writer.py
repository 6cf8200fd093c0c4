"""The prediction-log writer: never blocks, counts drops, loses nothing accepted."""

from __future__ import annotations

import json
import threading

import pytest

from mlship.errors import InvalidInputError
from mlship.predlog.reader import read_records
from mlship.predlog.writer import LogWriter
from tests.harness.ports import wait_until


def record(i: int) -> dict:
    return {"ts": "2026-11-29T14:00:00.000Z", "request_id": f"r{i}", "model": "m", "version": "1",
            "variant": "stable", "inputs": {"x": i}, "outputs": {"y": i * 2}, "latency_ms": 1.0, "status": 200,
            "error": None}


def test_full_queue_drops_and_counts_then_close_writes_every_accepted_record(tmp_path, monkeypatch):
    writer = LogWriter(tmp_path, queue_size=3)
    gate = threading.Event()
    original = writer._write
    monkeypatch.setattr(writer, "_write", lambda items: (gate.wait(), original(items)))
    results = [writer.submit(record(i)) for i in range(20)]
    # The thread holds what it took (at most a full queue) while blocked; the queue holds 3 more.
    assert results.count(False) >= 14 and writer.dropped == results.count(False)
    gate.set()
    writer.close()
    assert writer.written == writer.accepted == results.count(True)
    assert [r.request_id for r in read_records(tmp_path)] == [f"r{i}" for i, ok in enumerate(results) if ok]


def test_rotation_by_size_keeps_whole_lines(tmp_path):
    writer = LogWriter(tmp_path, max_bytes=1024)
    for i in range(100):
        writer.submit(record(i))
    writer.close()
    assert len(writer.files) > 3
    assert all(p.read_bytes().endswith(b"\n") for p in writer.files)
    assert [r.request_id for r in read_records(tmp_path)] == [f"r{i}" for i in range(100)]


def test_rotation_by_age(tmp_path):
    writer = LogWriter(tmp_path, max_age_s=0.000001, interval_s=0.01)
    for i in range(3):
        writer.submit(record(i))
        wait_until(lambda: writer.written == i + 1, 30, f"record {i} written")  # one write each
    writer.close()
    assert len(writer.files) == 3


def test_reader_skips_an_unfinished_last_line_and_names_bad_ones(tmp_path):
    good = tmp_path / "a.jsonl"
    good.write_text('{"ts": "t", "request_id": "1", "model": "m", "version": "1", "inputs": {}, "outputs": {},'
                    ' "latency_ms": 1}\n{"ts": "t", "request_id": "2"')
    assert [r.request_id for r in read_records(good)] == ["1"]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"ts": "t"}\n')
    with pytest.raises(InvalidInputError, match=r"b.jsonl:1: not a mlship.predlog/v1 record: request_id"):
        list(read_records(bad))


def test_lines_made_on_the_request_path_are_written_as_they_are_and_rotate_whole(tmp_path):
    writer = LogWriter(tmp_path, max_bytes=2048)
    lines = [json.dumps(record(i)).encode() + b"\n" for i in range(60)]
    for i, line in enumerate(lines):
        writer.submit(line if i % 7 else record(i))  # a record now and then: both kinds in one write
    writer.close()
    assert writer.written == writer.accepted == 60 and len(writer.files) > 2
    assert all(p.stat().st_size <= 2048 and p.read_bytes().endswith(b"\n") for p in writer.files)
    assert [r.request_id for r in read_records(tmp_path)] == [f"r{i}" for i in range(60)]
    assert b"".join(p.read_bytes() for p in writer.files).count(lines[1]) == 1


def test_lines_are_appended_whole_after_a_short_write_and_past_the_writev_limit(tmp_path, monkeypatch):
    """The writer appends a batch's lines with writev (no joined copy), at most the system's
    limit of lines a call; a short write (the system may write less) goes on where it stopped."""
    import os

    import mlship.predlog.writer as writer_module

    real, calls = os.writev, []

    def short_writev(fd, chunk):  # the system writes a part only: the first line and a half
        calls.append(len(chunk))
        return real(fd, [chunk[0], chunk[1][:len(chunk[1]) // 2]]) if len(chunk) > 1 else real(fd, chunk)

    monkeypatch.setattr(writer_module.os, "writev", short_writev)
    monkeypatch.setattr(writer_module, "_IOV_MAX", 7)
    writer = LogWriter(tmp_path, interval_s=60.0)
    lines = [json.dumps(record(i)).encode() + b"\n" for i in range(30)]
    assert writer.submit_lines(lines)
    writer.close()
    assert calls == [7, 7, 7, 7, 2]  # 30 lines, 7 a call
    assert b"".join(path.read_bytes() for path in writer.files) == b"".join(lines)
    assert [r.request_id for r in read_records(tmp_path)] == [f"r{i}" for i in range(30)]
    assert writer.written == 30 and writer.failed == 0
