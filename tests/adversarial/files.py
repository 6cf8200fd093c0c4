"""Small inputs the adversarial tests share: a named-feature model and CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def relu_model(path: Path, features: list[str], *, producer: str = "", version: str = "") -> Path:
    """Relu over [N, len(features)] floats, the columns named by `mlship.feature_names`;
    `producer` and `version` land in the model's producer fields (hostile strings welcome)."""
    n = len(features)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=producer,
                              producer_version=version)
    model.ir_version = 8
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(features)})
    onnx.save_model(model, path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """A CSV file written by the csv module (so hostile cells are quoted as CSV quotes them)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def assert_one_line_error(code: int, result, *words: str) -> None:
    """`result` (tests.support.Result) exited `code` with one `error:` line on stderr holding every word,
    no traceback and none of pydantic's "Value error" wording."""
    assert result.code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Value error" not in lines[0] and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
