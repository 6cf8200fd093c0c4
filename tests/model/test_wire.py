"""A model's signature read from its bytes without protobuf (`predict` starts reading
its input with it while the model is parsed): the same signature as the parse's for
models as converters write them, None for what it does not expect."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper

from mlship.batch import local
from mlship.batch.job import PredictOptions
from mlship.batch.run import run_predict
from mlship.model.load import load_model
from mlship.model.signature import FEATURE_NAMES_KEY, signature_of
from mlship.model.wire import quick_signature
from tests import models, models_corpus
from tests.support import MODEL


def handmade(tmp_path):
    """Dims fixed, named and unknown; an initializer listed among the inputs (older exporters);
    a map and a sequence of maps among the outputs; feature names in the metadata."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 1])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", -1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    maps = helper.make_value_info("maps", helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Identity", ["ids"], ["ids_out"])]
    graph = helper.make_graph(nodes, "g", [x, w, ids], [y, helper.make_tensor_value_info("ids_out", TensorProto.INT64, None), maps],
                              initializer=[helper.make_tensor("w", TensorProto.FLOAT, [3, 1], np.ones(3, np.float32))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.helper.set_model_props(model, {FEATURE_NAMES_KEY: json.dumps(["a", "b", "c"]), "author": "t"})
    path = tmp_path / "hand.onnx"
    onnx.save_model(model, path)
    return path


MAKERS = {
    "example": lambda tmp: MODEL,
    "example-mlp": lambda tmp: MODEL.with_name("model-mlp.onnx"),
    "handmade": handmade,
    "logistic": lambda tmp: models.logistic_classifier(tmp / "m.onnx"),
    "mixed-inputs": lambda tmp: models.mixed_inputs(tmp / "m.onnx"),
    "fixed-batch": lambda tmp: models.fixed_batch(tmp / "m.onnx"),
    "two-matrices": lambda tmp: models_corpus.two_matrices(tmp).model,
    "sklearn-zipmap": lambda tmp: models_corpus.sklearn_multiclass(tmp, zipmap=True).model,
    "lightgbm": lambda tmp: models_corpus.lightgbm_model(tmp, "classification").model,
}


@pytest.mark.parametrize("name", MAKERS)
def test_the_bytes_give_the_signature_the_parse_gives(tmp_path, name):
    path = MAKERS[name](tmp_path)
    assert quick_signature(path) == signature_of(load_model(path).proto)


def test_what_it_does_not_expect_is_left_to_the_parse(tmp_path):
    data = MODEL.read_bytes()
    cases = {"cut.onnx": data[: len(data) // 2], "empty.onnx": b"", "image.onnx": b"\x89PNG\r\n\x1a\n" + data[:100],
             "noise.onnx": bytes(range(256)) * 8, "model.json": data}
    for file, content in cases.items():
        (tmp_path / file).write_bytes(content)
        assert quick_signature(tmp_path / file) is None, file
    assert quick_signature(tmp_path / "missing.onnx") is None


def test_the_model_is_parsed_while_the_first_chunk_is_read(tmp_path, monkeypatch):
    """No protobuf before reading starts: the full parse comes once the reader thread is started."""
    order, real_load, real_prefetch = [], local.load_model, local._Prefetch

    def load(*args, **kwargs):
        order.append("parse")
        return real_load(*args, **kwargs)

    def prefetch(*args, **kwargs):
        order.append("read")
        return real_prefetch(*args, **kwargs)

    monkeypatch.setattr(local, "load_model", load)
    monkeypatch.setattr(local, "_Prefetch", prefetch)
    X, _, names = models.sample_matrix()
    pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), tmp_path / "in.parquet")
    options = PredictOptions(model=MODEL, input=str(tmp_path / "in.parquet"), output=tmp_path / "o.parquet")
    assert run_predict(options).rows == len(X) and order == ["read", "parse"]


def test_a_signature_the_parse_does_not_confirm_is_not_read_with(tmp_path, monkeypatch):
    """Should the bytes' signature differ from the parse's, the reader starts over with the parse's."""
    X, _, names = models.sample_matrix()
    pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), tmp_path / "in.parquet")
    truth = signature_of(load_model(MODEL).proto)
    wrong = truth.model_copy(update={"feature_names": names[::-1], "features": {"X": names[::-1]}})
    monkeypatch.setattr(local, "quick_signature", lambda path: wrong)
    options = PredictOptions(model=MODEL, input=str(tmp_path / "in.parquet"), output=tmp_path / "o.parquet")
    assert run_predict(options).rows == len(X)
    label, probabilities = models.serving_session(MODEL).run(None, {"X": X})
    table = pq.read_table(tmp_path / "o.parquet")
    assert table["label"].to_pylist() == label.tolist()
    assert np.array_equal(table["probabilities_1"].to_numpy(), probabilities[:, 1])
