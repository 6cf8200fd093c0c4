"""Input files a careless user or an attacker hands to the CLI (issue 15,
items 10 and 11): CSV fields past the csv module's limit, ONNX external data
pointing outside the model's directory, an empty or corrupt `predict` work
directory, outputs that cannot be written, and file names that look like globs.

Every case drives the real CLI and checks the documented exit code, a one-line
message naming what and where, and that nothing was written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.adversarial.files import relu_model, write_csv
from tests.support import run


def read_rows(path: Path) -> list[list[float]]:
    """A predictions CSV as numbers, header checked."""
    lines = path.read_text().splitlines()
    assert lines[0] == "y_0,y_1"
    return [[float(v) for v in line.split(",")] for line in lines[1:]]


def one_line_error(result, code: int) -> str:
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = relu_model(tmp_path / "m.onnx", ["a", "b"])
    return tmp_path, model


# --- CSV fields past the csv module's limit (131072 characters by default) ---

def test_check_reads_a_sample_with_a_field_past_the_csv_module_default(project):
    root, model = project
    big = "n" * 300_000
    sample = write_csv(root / "s.csv", ["a", "b", "note"], [[1, 2, big], [3, 4, "short"]])
    result = run("check", str(model), "--sample", str(sample))
    assert result.code == 0, result.stderr
    assert "smoke run: 2 rows" in result.stdout


def test_predict_reads_a_header_past_the_csv_module_default(project):
    root, model = project
    name = "c" * 200_000
    data = write_csv(root / "d.csv", ["a", "b", name], [[1, -2, "x"], [3, 4, "y"]])
    result = run("predict", str(model), "--input", str(data), "--output", "o.csv")
    assert result.code == 0, result.stderr
    assert read_rows(root / "o.csv") == [[1, 0], [3, 4]]


def test_a_field_past_mlships_bound_is_exit_3_naming_file_and_line(project, monkeypatch):
    import mlship.data.tables

    monkeypatch.setattr(mlship.data.tables, "CSV_FIELD_LIMIT", 1000)
    root, model = project
    sample = write_csv(root / "s.csv", ["a", "b", "note"], [[1, 2, "ok"], [3, 4, "n" * 1001]])
    line = one_line_error(run("check", str(model), "--sample", str(sample)), 3)
    assert line == f"error: {sample}:3: a field is longer than 1,000 characters"


# --- ONNX external data: only files inside the model's directory ---

def external_model(directory: Path, location: str, *, offset: str = "0", length: str | None = None) -> tuple[Path, bytes]:
    """y = x + w, with w (2 floats) stored as external data at `location`."""
    directory.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    w = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "ext", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(["a", "b"])})
    tensor = model.graph.initializer[0]
    data = tensor.raw_data
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length or str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = directory / "model.onnx"
    onnx.save_model(model, path)
    return path, data


@pytest.mark.parametrize("location", ["w.bin", "data/w.bin"])
def test_external_data_inside_the_model_directory_still_works(tmp_path, location):
    model, data = external_model(tmp_path / "m", location)
    (tmp_path / "m" / location).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "m" / location).write_bytes(data)
    sample = write_csv(tmp_path / "s.csv", ["a", "b"], [[1, 1]])
    result = run("predict", str(model), "--input", str(sample), "--output", str(tmp_path / "o.csv"))
    assert result.code == 0, result.stderr
    assert read_rows(tmp_path / "o.csv") == [[2, 3]]


def _outside(tmp_path: Path, data: bytes) -> Path:
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(data)
    return secret


ESCAPES = {
    "parent": lambda tmp, secret: ("../outside/secret.bin", "the path leads outside the model's directory"),
    "deep-parent": lambda tmp, secret: ("data/../../outside/secret.bin", "the path leads outside the model's directory"),
    "absolute": lambda tmp, secret: (str(secret), "an absolute path is not allowed"),
    "missing": lambda tmp, secret: ("nope.bin", "the file is missing"),
    "empty": lambda tmp, secret: ("", "not a file name"),
    "directory": lambda tmp, secret: (".", "not a file"),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
@pytest.mark.parametrize("command", ["check", "predict"])
def test_external_data_outside_the_model_directory_is_refused(tmp_path, case, command):
    _, data = external_model(tmp_path / "probe", "w.bin")
    secret = _outside(tmp_path, data)
    location, why = ESCAPES[case](tmp_path, secret)
    model, _ = external_model(tmp_path / "m", location)
    args = [command, str(model)] + (["--input", str(write_csv(tmp_path / "s.csv", ["a", "b"], [[1, 1]])),
                                     "--output", str(tmp_path / "o.csv")] if command == "predict" else [])
    line = one_line_error(run(*args), 3)
    assert line.startswith(f"error: {model}: tensor 'w' keeps its data in {location!r}: {why}")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / ".o.csv.mlship-work").exists()


def test_external_data_through_a_symbolic_link_is_refused(tmp_path):
    model, data = external_model(tmp_path / "m", "w.bin")
    secret = _outside(tmp_path, data)
    (tmp_path / "m" / "w.bin").symlink_to(secret)
    line = one_line_error(run("check", str(model)), 3)
    assert line.startswith(f"error: {model}: tensor 'w' keeps its data in 'w.bin': a symbolic link is not allowed")


def test_external_data_through_a_linked_directory_is_refused(tmp_path):
    model, data = external_model(tmp_path / "m", "sub/secret.bin")
    secret = _outside(tmp_path, data)
    (tmp_path / "m" / "sub").symlink_to(secret.parent, target_is_directory=True)
    line = one_line_error(run("check", str(model)), 3)
    assert "the path leads outside the model's directory" in line


@pytest.mark.parametrize("offset,length,why", [("0", "9", "beyond the file's 8 bytes"), ("4", "8", "beyond the file's 8 bytes"),
                                               ("x", "8", "offset and length must be whole numbers"),
                                               ("-1", "8", "beyond the file's 8 bytes")])
def test_external_data_ranges_outside_the_file_are_refused(tmp_path, offset, length, why):
    model, data = external_model(tmp_path / "m", "w.bin", offset=offset, length=length)
    (tmp_path / "m" / "w.bin").write_bytes(data)
    line = one_line_error(run("check", str(model)), 3)
    assert line.startswith(f"error: {model}: tensor 'w' keeps its data in 'w.bin': ") and why in line


# --- the predict work directory: an empty or corrupt state, written atomically ---

def interrupted_run(root: Path, model: Path) -> tuple[Path, Path]:
    """The work directory of a run (--batch-size 1, --output o.csv) that
    finished its first chunk and stopped at a bad row in the second: its
    state and the first part, as the run leaves them. Returns (input, work dir)."""
    from mlship.batch.job import PredictOptions, _fingerprint
    from mlship.batch.workdir import Journal
    from mlship.model.load import sha256_file

    data = write_csv(root / "d.csv", ["a", "b"], [[1, 2], ["zz", 4], [5, 6]])
    options = PredictOptions(model=model, input=str(data), output=Path("o.csv"), batch_size=1)
    work = root / ".o.csv.mlship-work"
    work.mkdir()
    (work / "state.json").write_text(json.dumps({"fingerprint": _fingerprint(options, [data], sha256_file(model)),
                                                 "output": "o.csv"}))
    journal = Journal(work)
    journal.append(0, b"y_0,y_1\n1,2\n")
    journal.close()
    return data, work


def fix_in_place(data: Path) -> None:
    """Correct the bad row without changing the fingerprint (same size and
    mtime), as if it had been a transient read problem."""
    stat = data.stat()
    data.write_bytes(data.read_bytes().replace(b"zz,4", b"30,4"))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_failed_run_leaves_a_whole_state_and_no_temporary_files(project):
    root, model = project
    data = write_csv(root / "d.csv", ["a", "b"], [["zz", 4]])
    assert run("predict", str(model), "--input", str(data), "--output", "o.csv").code == 3
    work = root / ".o.csv.mlship-work"
    state = json.loads((work / "state.json").read_text())
    assert set(state) == {"fingerprint", "output"} and len(state["fingerprint"]) == 64
    assert [p.name for p in work.iterdir()] == ["state.json"]
    assert not (root / "o.csv").exists()


def assert_resumed_from_the_first_chunk(root: Path, model: Path, data: Path, work: Path) -> None:
    """--resume takes chunk 0 from the journal, scores the rest, and removes the work."""
    result = run("--json", "predict", str(model), "--input", str(data), "--output", "o.csv", "--batch-size", "1",
                 "--resume")
    assert result.code == 0, result.stderr
    assert result.json()["resumed_chunks"] == 1
    assert read_rows(root / "o.csv") == [[1, 2], [30, 4], [5, 6]]
    assert not work.exists()


def test_resume_of_an_interrupted_run_uses_its_finished_part(project):
    root, model = project
    data, work = interrupted_run(root, model)
    fix_in_place(data)
    assert_resumed_from_the_first_chunk(root, model, data, work)


CORRUPT_STATES = {"empty": b"", "blank": b"  \n", "truncated": b'{"fingerprint": "ab', "list": b"[]",
                  "number fingerprint": b'{"fingerprint": 5}', "binary": b"\xff\xfe\x00garbage"}


@pytest.mark.parametrize("case", sorted(CORRUPT_STATES))
def test_resume_with_an_empty_or_corrupt_state_is_exit_3_naming_it(project, case):
    root, model = project
    data, work = interrupted_run(root, model)
    state = work / "state.json"
    state.write_bytes(CORRUPT_STATES[case])
    before = sorted(p.name for p in work.iterdir())
    result = run("predict", str(model), "--input", str(data), "--output", "o.csv", "--batch-size", "1", "--resume")
    line = one_line_error(result, 3)
    assert line.startswith(f"error: {Path('.o.csv.mlship-work') / 'state.json'}: the interrupted run's state is ")
    assert line.endswith("Run again without --resume to start over")
    assert sorted(p.name for p in work.iterdir()) == before  # the parts are kept for a person to look at
    assert state.read_bytes() == CORRUPT_STATES[case]
    assert not (root / "o.csv").exists()


def test_resume_with_a_state_that_is_a_directory_is_exit_3(project):
    root, model = project
    data, work = interrupted_run(root, model)
    (work / "state.json").unlink()
    (work / "state.json").mkdir()
    result = run("predict", str(model), "--input", str(data), "--output", "o.csv", "--batch-size", "1", "--resume")
    assert "the interrupted run's state" in one_line_error(result, 3)


def test_without_resume_a_corrupt_state_is_cleared_and_the_run_starts_over(project):
    root, model = project
    _, work = interrupted_run(root, model)
    (work / "state.json").write_bytes(b"")
    data = write_csv(root / "fixed.csv", ["a", "b"], [[1, 2], [3, 4], [5, 6]])
    result = run("predict", str(model), "--input", str(data), "--output", "o.csv", "--batch-size", "1")
    assert result.code == 0, result.stderr
    assert read_rows(root / "o.csv") == [[1, 2], [3, 4], [5, 6]]
    assert not work.exists()


CORRUPT_JOURNALS = {  # journal bytes -> why: whole records, but not what was written
    "checksum": (lambda whole: whole.replace(b"1,2\n", b"9,2\n"), "its checksum does not match"),
    "not a journal": (lambda whole: b"y_0,y_1\n1,2\n" * 4, "not a chunk record"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_JOURNALS))
def test_resume_with_a_corrupt_part_is_exit_3_naming_it(project, case):
    root, model = project
    data, work = interrupted_run(root, model)
    fix_in_place(data)
    journal = work / "parts.journal"
    corrupt, why = CORRUPT_JOURNALS[case]
    journal.write_bytes(corrupt(journal.read_bytes()))
    before = journal.read_bytes()
    result = run("predict", str(model), "--input", str(data), "--output", "o.csv", "--batch-size", "1", "--resume")
    line = one_line_error(result, 3)
    assert line.startswith(f"error: {Path('.o.csv.mlship-work') / 'parts.journal'}: an interrupted run's part "
                           f"is unreadable at byte 0: {why}")
    assert journal.read_bytes() == before  # kept for a person to look at
    assert not (root / "o.csv").exists()


@pytest.mark.parametrize("cut", [5, 30])  # in the second record's header; in its payload
def test_resume_scores_again_a_chunk_whose_record_a_crash_cut_short(project, cut):
    from mlship.batch.workdir import _HEAD, Journal, finished_parts

    root, model = project
    data, work = interrupted_run(root, model)
    fix_in_place(data)
    journal = Journal(work)
    journal.append(1, b"y_0,y_1\n777,4\n" * 3)  # a wrong value: it must not reach the output
    journal.close()
    path = work / "parts.journal"
    whole = path.stat().st_size
    os.truncate(path, whole - len(b"y_0,y_1\n777,4\n" * 3) - _HEAD.size + cut)
    assert list(finished_parts(work)) == [0]
    assert_resumed_from_the_first_chunk(root, model, data, work)


# --- outputs that cannot be written: refused before any scoring ---

def _bad_output(root: Path) -> dict[str, tuple[list[str], str]]:
    (root / "dir.csv").mkdir()
    (root / "file.txt").write_text("x")
    return {
        "a directory": (["--output", "dir.csv"], "error: --output dir.csv is a directory"),
        "a directory with no suffix": (["--output", "."], "error: --output . is a directory"),
        "under a file": (["--output", "file.txt/o.csv"], "error: --output file.txt/o.csv: file.txt is not a directory"),
        "deeper under a file": (["--output", "file.txt/x/o.csv"],
                                "error: --output file.txt/x/o.csv: file.txt is not a directory"),
        "rejects into a directory": (["--output", "o.csv", "--on-error", "skip", "--rejects", "dir.csv"],
                                     "error: --rejects dir.csv is a directory"),
        "unknown format": (["--output", "o.txt"], "error: --output o.txt: unknown format '.txt'"),
    }


@pytest.mark.parametrize("case", ["a directory", "a directory with no suffix", "under a file", "deeper under a file",
                                  "rejects into a directory", "unknown format"])
def test_unwritable_outputs_are_exit_2_before_scoring(project, case):
    root, model = project
    args, message = _bad_output(root)[case]
    data = write_csv(root / "d.csv", ["a", "b"], [[1, 2]])
    before = sorted(p.name for p in root.iterdir())
    line = one_line_error(run("predict", str(model), "--input", str(data), *args, "--log-dir", "logs"), 2)
    assert line.startswith(message)
    assert sorted(p.name for p in root.iterdir()) == before  # no logs, no work directory, no output
    assert list((root / "dir.csv").iterdir()) == []


def test_an_output_in_a_directory_nobody_can_create_files_in_is_exit_2_before_scoring(project):
    """/proc refuses new files even to root (CI runs as root, so chmod would not do)."""
    root, model = project
    data = write_csv(root / "d.csv", ["a", "b"], [[1, 2]])
    line = one_line_error(run("predict", str(model), "--input", str(data), "--output", "/proc/o.csv",
                              "--log-dir", "logs"), 2)
    assert line.startswith("error: --output /proc/o.csv: cannot write in /proc: ")
    assert not (root / "logs").exists() and not Path("/proc/o.csv").exists()


# --- a file named like a glob is that file ---

@pytest.mark.parametrize("name", ["a[1].csv", "b[ab].csv", "c*.csv", "d?.csv"])
def test_predict_reads_a_file_named_like_a_glob(project, name):
    root, model = project
    write_csv(root / name, ["a", "b"], [[1, 2], [3, 4]])
    for decoy in ("a1.csv", "ba.csv", "cx.csv", "dx.csv"):  # what the name matches as a glob
        write_csv(root / decoy, ["a", "b"], [[100, 100]])
    result = run("--json", "predict", str(model), "--input", name, "--output", "o.csv")
    assert result.code == 0, result.stderr
    assert result.json()["input_files"] == 1
    assert read_rows(root / "o.csv") == [[1, 2], [3, 4]]


def test_drift_reads_files_named_like_globs(tmp_path):
    ref = write_csv(tmp_path / "ref[1].csv", ["x"], [[i] for i in range(300)])
    cur = write_csv(tmp_path / "cur[1].csv", ["x"], [[i] for i in range(300)])
    write_csv(tmp_path / "cur1.csv", ["x"], [[i + 1000] for i in range(300)])  # the glob's match: drifted
    result = run("--json", "drift", "--reference", str(ref), "--current", str(cur), "--fail-on", "never")
    assert result.code == 0, result.stderr  # x counts 0..299: an id-like column, reported but not judged
    assert result.json()["current"]["rows"] == 300 and result.json()["dataset_drift"] is False


def test_a_glob_still_matches_when_no_file_has_its_name(project):
    root, model = project
    write_csv(root / "p1.csv", ["a", "b"], [[1, 2]])
    write_csv(root / "p2.csv", ["a", "b"], [[3, 4]])
    result = run("--json", "predict", str(model), "--input", "p[12].csv", "--output", "o.csv")
    assert result.code == 0, result.stderr
    assert result.json()["input_files"] == 2


# --- A model nested deeper than protobuf parses (predict read its inputs ahead: RecursionError, exit 1) ---

def _length_delimited(number: int, payload: bytes) -> bytes:
    size, varint = len(payload), b""
    while True:
        byte, size = size & 0x7F, size >> 7
        varint += bytes([byte | 0x80 if size else byte])
        if not size:
            return bytes([(number << 3) | 2]) + varint + payload


@pytest.mark.parametrize("command", ["check", "predict"])
def test_a_model_nested_past_protobufs_depth_is_exit_3(tmp_path, command):
    value_type = _length_delimited(1, b"\x08\x01")  # TypeProto{tensor_type{elem_type: FLOAT}}
    for _ in range(3000):  # TypeProto{sequence_type{elem_type: TypeProto{...}}}
        value_type = _length_delimited(4, _length_delimited(1, value_type))
    graph = _length_delimited(11, _length_delimited(1, b"x") + _length_delimited(2, value_type))
    model = tmp_path / "deep.onnx"
    model.write_bytes(_length_delimited(7, graph))
    args = [command, str(model)] + (["--input", str(write_csv(tmp_path / "s.csv", ["x"], [[1]])),
                                     "--output", str(tmp_path / "o.csv")] if command == "predict" else [])
    line = one_line_error(run(*args), 3)
    assert str(model) in line and "not a readable ONNX model" in line
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / ".o.csv.mlship-work").exists()
