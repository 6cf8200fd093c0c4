"""Structural validation: the ONNX checker, shape inference, runtime support."""

from __future__ import annotations

from mlship.errors import InvalidInputError
from mlship.model.load import ModelFile


def run_checker(model: ModelFile) -> None:
    """onnx.checker with full_check (types and shapes); exit 3 on failure."""
    import onnx

    try:
        # The path form also handles models with external data and > 2 GB.
        onnx.checker.check_model(str(model.path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InvalidInputError(f"{model.path} fails the ONNX checker: {_first_line(exc)}") from None


def run_shape_inference(model: ModelFile) -> int:
    """Strict shape inference; returns how many intermediate values got a shape."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model.proto, check_type=True, strict_mode=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise InvalidInputError(f"{model.path} fails ONNX shape inference: {_first_line(exc)}") from None
    return len(inferred.graph.value_info)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
