"""Models as real converters export them, made at test time (small and quick).

Each entry writes a model, a sample CSV with named columns and a label
column, and, for a model that takes an unnamed matrix, the `features:` a
project would declare. Converters that are not installed skip with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

NUMERIC = ["age", "income", "score", "visits"]


@dataclass
class CorpusModel:
    """A model file with its sample and what a project says about it."""

    model: Path
    sample: Path
    labels: str = "label"
    features: list[str] | dict[str, list[str]] | None = None
    task: str = "classification"


@dataclass
class Entry:
    """How to make one corpus model, and what it needs installed."""

    name: str
    make: Callable[[Path], CorpusModel]
    needs: list[str] = field(default_factory=list)


def _data(rows: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, len(NUMERIC))).astype(np.float32)
    binary = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    three = np.digitize(X[:, 0] - X[:, 2], [-0.5, 0.5]).astype(np.int64)
    return X, binary, three


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    names = list(columns)
    lines = [",".join(names)]
    for i in range(len(next(iter(columns.values())))):
        lines.append(",".join(_cell(columns[n][i]) for n in names))
    path.write_text("\n".join(lines) + "\n")
    return path


def _cell(value: object) -> str:
    return f"{value:.6f}" if isinstance(value, (float, np.floating)) else str(value)


def _matrix_sample(root: Path, X: np.ndarray, y: np.ndarray) -> Path:
    return _write_csv(root / "sample.csv", {**{n: X[:, j] for j, n in enumerate(NUMERIC)}, "label": y})


def _skl(estimator, X: np.ndarray, path: Path, **options) -> None:
    from skl2onnx import to_onnx

    onnx.save_model(to_onnx(estimator, X[:1], target_opset={"": 17, "ai.onnx.ml": 3},
                            options={id(estimator): options} if options else None), path)


def sklearn_plain(root: Path) -> CorpusModel:
    """skl2onnx's default export of a classifier: X [N, 4], label and ZipMap probabilities."""
    from sklearn.linear_model import LogisticRegression

    X, y, _ = _data()
    _skl(LogisticRegression().fit(X, y), X, root / "model.onnx")
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, y), features=NUMERIC)


def sklearn_regressor(root: Path) -> CorpusModel:
    """A regressor: variable [N, 1] float."""
    from sklearn.ensemble import GradientBoostingRegressor

    X, _, _ = _data()
    target = (2 * X[:, 0] - X[:, 3]).astype(np.float64)
    _skl(GradientBoostingRegressor(n_estimators=20, max_depth=3).fit(X, target), X, root / "model.onnx")
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, target), features=NUMERIC, task="regression")


def sklearn_float64(root: Path) -> CorpusModel:
    """A regressor exported from float64 data (numpy's default): `X [N, 4]` double in, double out."""
    from sklearn.linear_model import Ridge

    X, _, _ = _data()
    X = X.astype(np.float64)
    target = 2 * X[:, 0] - X[:, 3] + 0.5
    _skl(Ridge(alpha=0.1).fit(X, target), X, root / "model.onnx")
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, target), features=NUMERIC, task="regression")


def sklearn_multiclass(root: Path, *, zipmap: bool) -> CorpusModel:
    """Three classes, with skl2onnx's ZipMap output (a list of maps) or a plain probability matrix."""
    from sklearn.ensemble import RandomForestClassifier

    X, _, y = _data()
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    _skl(model, X, root / "model.onnx", **({} if zipmap else {"zipmap": False}))
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, y), features=NUMERIC)


def sklearn_pipeline(root: Path) -> CorpusModel:
    """A Pipeline with a ColumnTransformer over a string and numeric columns:
    one [N, 1] input per column, named as the columns."""
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y, _ = _data()
    city = np.array(["oslo", "lima", "pune"])[np.arange(len(X)) % 3]
    frame = pd.DataFrame({"city": city, **{n: X[:, j] for j, n in enumerate(NUMERIC)}})
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                              ("num", StandardScaler(), NUMERIC)])
    pipe = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(frame, y)
    onnx.save_model(to_onnx(pipe, frame[:1], target_opset={"": 17, "ai.onnx.ml": 3}), root / "model.onnx")
    sample = _write_csv(root / "sample.csv", {"city": city, **{n: X[:, j] for j, n in enumerate(NUMERIC)}, "label": y})
    return CorpusModel(root / "model.onnx", sample)


def two_matrices(root: Path) -> CorpusModel:
    """A hand-made graph with two matrix inputs: a [N, 2], b [N, 2] -> y = sum(a) - sum(b), [N, 1]."""
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2]) for n in ("a", "b")]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node("ReduceSum", ["a", "axes"], ["sa"], keepdims=1),
             helper.make_node("ReduceSum", ["b", "axes"], ["sb"], keepdims=1),
             helper.make_node("Sub", ["sa", "sb"], ["y"])]
    graph = helper.make_graph(nodes, "two", inputs, [out], initializer=[axes])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "model.onnx")
    X, _, _ = _data()
    target = X[:, 0] + X[:, 1] - X[:, 2] - X[:, 3]
    sample = _matrix_sample(root, X, target)
    return CorpusModel(root / "model.onnx", sample, features={"a": NUMERIC[:2], "b": NUMERIC[2:]}, task="regression")


def _booster_data(task: str) -> tuple[np.ndarray, np.ndarray]:
    X, binary, _ = _data()
    return X, (binary if task == "classification" else (2 * X[:, 0] - X[:, 3]).astype(np.float32))


def _onnxmltools_sample(root: Path, convert, estimator, task: str) -> CorpusModel:
    """onnxmltools' default export: `input [None, 4]` float, the converter's own opsets."""
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y = _booster_data(task)
    model = convert(estimator.fit(X, y), initial_types=[("input", FloatTensorType([None, X.shape[1]]))])
    onnx.save_model(model, root / "model.onnx")
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, y), features=NUMERIC, task=task)


def lightgbm_model(root: Path, task: str) -> CorpusModel:
    """LightGBM through onnxmltools: the classifier's label is declared [1] (it is [N]) and its
    probabilities are a ZipMap (a list of maps); the regressor's `variable` is [N, 1]."""
    import lightgbm
    from onnxmltools import convert_lightgbm

    kind = lightgbm.LGBMClassifier if task == "classification" else lightgbm.LGBMRegressor
    return _onnxmltools_sample(root, convert_lightgbm, kind(n_estimators=20, verbose=-1), task)


def xgboost_model(root: Path, task: str) -> CorpusModel:
    """XGBoost through onnxmltools: a graph that imports only the ai.onnx.ml domain."""
    import xgboost
    from onnxmltools import convert_xgboost

    kind = xgboost.XGBClassifier if task == "classification" else xgboost.XGBRegressor
    return _onnxmltools_sample(root, convert_xgboost, kind(n_estimators=20, max_depth=3), task)


def _torch_mlp(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    X, y, _ = _data()
    # 64 hidden units: enough weight bytes that the dynamo exporter writes them to model.onnx.data
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2), torch.nn.Softmax(dim=1))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs, targets = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.nll_loss(torch.log(net(inputs) + 1e-7), targets).backward()
        optimiser.step()
    return net.eval(), X, y


def torch_mlp(root: Path) -> CorpusModel:
    """`torch.onnx.export` with its default (dynamo) exporter and a dynamic batch axis: opset 18+,
    the weights in an external `model.onnx.data` file beside the model."""
    import torch

    net, X, y = _torch_mlp()
    with _quiet():
        torch.onnx.export(net, (torch.zeros(2, 4),), str(root / "model.onnx"), input_names=["features"],
                          output_names=["probabilities"], dynamic_axes={"features": {0: "batch"}})
    assert (root / "model.onnx.data").stat().st_size > 0  # the weights are external data, as users get them
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, y), features=NUMERIC)


def torch_mlp_legacy(root: Path) -> CorpusModel:
    """The TorchScript exporter (`dynamo=False`) with the names torch makes up: input
    `onnx::Gemm_0`, output `8`; only the input's batch axis is dynamic."""
    import torch

    net, X, y = _torch_mlp()
    with _quiet():
        torch.onnx.export(net, (torch.zeros(2, 4),), str(root / "model.onnx"),
                          dynamic_axes={"onnx::Gemm_0": {0: "batch"}}, dynamo=False)
    return CorpusModel(root / "model.onnx", _matrix_sample(root, X, y), features=NUMERIC)


def _quiet():
    """torch's exporters print progress and deprecation warnings: keep test output readable."""
    import contextlib
    import io
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


CORPUS = [
    Entry("sklearn-plain", sklearn_plain, ["skl2onnx"]),
    Entry("sklearn-regressor", sklearn_regressor, ["skl2onnx"]),
    Entry("sklearn-multiclass-zipmap", lambda root: sklearn_multiclass(root, zipmap=True), ["skl2onnx"]),
    Entry("sklearn-multiclass-plain", lambda root: sklearn_multiclass(root, zipmap=False), ["skl2onnx"]),
    Entry("sklearn-pipeline", sklearn_pipeline, ["skl2onnx", "pandas"]),
    Entry("sklearn-float64", sklearn_float64, ["skl2onnx"]),
    Entry("two-matrices", two_matrices),
    Entry("lightgbm-classifier", lambda root: lightgbm_model(root, "classification"), ["onnxmltools", "lightgbm"]),
    Entry("lightgbm-regressor", lambda root: lightgbm_model(root, "regression"), ["onnxmltools", "lightgbm"]),
    Entry("xgboost-classifier", lambda root: xgboost_model(root, "classification"), ["onnxmltools", "xgboost"]),
    Entry("xgboost-regressor", lambda root: xgboost_model(root, "regression"), ["onnxmltools", "xgboost"]),
    Entry("torch-mlp", torch_mlp, ["torch", "onnxscript"]),
    Entry("torch-mlp-legacy", torch_mlp_legacy, ["torch"]),
]
