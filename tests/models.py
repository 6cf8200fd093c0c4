"""Small ONNX models made on the spot with scikit-learn, skl2onnx and onnx.helper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.support import SAMPLE


def sample_matrix() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The example's sample as (X float32, y int64, feature names)."""
    header = SAMPLE.read_text().splitlines()[0].split(",")
    data = np.loadtxt(SAMPLE, delimiter=",", skiprows=1)
    return data[:, :-1].astype(np.float32), data[:, -1].astype(np.int64), header[:-1]


def serving_session(path: Path | str):
    """An onnxruntime session set up as `mlship serve` sets up its own (one
    intra-op thread): a tree ensemble's sums then run in the same order, so
    answers can be compared bit for bit."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def logistic_classifier(path: Path) -> Path:
    """A different classifier on the same signature as the example model."""
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import to_onnx

    X, y, names = sample_matrix()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    helper.set_model_props(onx, {"mlship.feature_names": json.dumps(names)})
    onnx.save_model(onx, path)
    return path


def linear_regressor(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """y = 2*a - b + 1 exactly; returns (model, X, y)."""
    from sklearn.linear_model import LinearRegression
    from skl2onnx import to_onnx

    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 2)).astype(np.float32)
    y = 2 * X[:, 0] - X[:, 1] + 1
    model = LinearRegression().fit(X, y)
    onx = to_onnx(model, X[:1], target_opset=17)
    helper.set_model_props(onx, {"mlship.feature_names": json.dumps(["a", "b"])})
    onnx.save_model(onx, path)
    return path, X, y


def mixed_inputs(path: Path) -> Path:
    """Named inputs of several dtypes: age int64 [N,1], city string [N,1],
    score float [N,1]; output = score + age (float [N,1])."""
    age = helper.make_tensor_value_info("age", TensorProto.INT64, ["N", 1])
    city = helper.make_tensor_value_info("city", TensorProto.STRING, ["N", 1])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1])
    city_len = helper.make_tensor_value_info("city_seen", TensorProto.STRING, ["N", 1])
    nodes = [
        helper.make_node("Cast", ["age"], ["age_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["score", "age_f"], ["out"]),
        helper.make_node("Identity", ["city"], ["city_seen"]),
    ]
    graph = helper.make_graph(nodes, "mixed", [age, city, score], [out, city_len])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


def fixed_batch(path: Path) -> Path:
    """Relu over a [1, 4] float input: batch size fixed at 1."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


def log_of_input(path: Path) -> Path:
    """Log(x): NaN for negative inputs, to exercise the finite-output check."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Log", ["x"], ["y"])], "log", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


def invalid_graph(path: Path) -> Path:
    """Parses as ONNX but fails the checker: a node reads an undefined value."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "bad", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def nan_outputs(path: Path) -> Path:
    """X / (X - X) on the example's 30 inputs: a valid model that answers only NaN and infinity,
    a release that passes every signature check and fails the device's health check."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 30])
    nodes = [helper.make_node("Sub", ["X", "X"], ["zero"]), helper.make_node("Div", ["X", "zero"], ["Y"])]
    model = helper.make_model(helper.make_graph(nodes, "nan", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path
