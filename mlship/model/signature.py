"""Model inputs and outputs: names, dtypes, shapes with dynamic axes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import onnx

# Metadata key in which mlship and its example record the column order of a
# single 2-D tensor input, so named columns can be mapped onto it.
FEATURE_NAMES_KEY = "mlship.feature_names"

_TENSOR_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}


class TensorSpec(BaseModel):
    """One input or output of a model."""

    name: str
    dtype: str | None = Field(description="NumPy dtype name; None for non-tensor values.")
    shape: list[int | str | None] | None = Field(description="Dims; a string names a dynamic axis, None is unknown.")
    type: str = Field(description="ONNX type, e.g. tensor(float) or seq(map(int64,tensor(float))).")

    @property
    def is_tensor(self) -> bool:
        return self.type.startswith("tensor(")

    def shape_text(self) -> str:
        """[N, 30] style, for people."""
        if self.shape is None:
            return "?"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


class Signature(BaseModel):
    """What a model takes and returns."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    feature_names: list[str] | None = Field(
        None, description="Column order of a single 2-D input (the one entry of `features`)."
    )
    features: dict[str, list[str]] = Field(
        default_factory=dict, description="Column order of each 2-D input that has named columns."
    )
    feature_source: str | None = Field(
        None, description="Where the names came from: --features, mlship.yaml or model metadata."
    )

    def input(self, name: str) -> TensorSpec:
        return next(spec for spec in self.inputs if spec.name == name)


def signature_of(proto: "onnx.ModelProto") -> Signature:
    """Read the signature from the graph (initializers are not inputs)."""
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [_spec(v) for v in proto.graph.input if v.name not in initializers]
    outputs = [_spec(v) for v in proto.graph.output]
    meta = {p.key: p.value for p in proto.metadata_props}
    names = None
    if FEATURE_NAMES_KEY in meta:
        try:
            parsed = json.loads(meta[FEATURE_NAMES_KEY])
            names = [str(n) for n in parsed] if isinstance(parsed, list) else None
        except json.JSONDecodeError:
            names = None
    if not names or len(inputs) != 1:
        return Signature(inputs=inputs, outputs=outputs)
    return Signature(inputs=inputs, outputs=outputs, feature_names=names, features={inputs[0].name: names},
                     feature_source="model metadata")


def _spec(value: "onnx.ValueInfoProto") -> TensorSpec:
    t = value.type
    if t.HasField("tensor_type"):
        shape = None
        if t.tensor_type.HasField("shape"):
            shape = [_dim(d) for d in t.tensor_type.shape.dim]
        dtype = _TENSOR_DTYPES.get(t.tensor_type.elem_type, f"onnx:{t.tensor_type.elem_type}")
        return TensorSpec(name=value.name, dtype=dtype, shape=shape, type=f"tensor({_onnx_name(dtype)})")
    return TensorSpec(name=value.name, dtype=None, shape=None, type=_type_text(t))


def _dim(d: "onnx.TensorShapeProto.Dimension") -> int | str | None:
    if d.HasField("dim_value"):
        return d.dim_value
    if d.HasField("dim_param"):
        return d.dim_param
    return None


def _onnx_name(dtype: str) -> str:
    return {"float32": "float", "float64": "double", "float16": "float16"}.get(dtype, dtype)


def _type_text(t: "onnx.TypeProto") -> str:
    """Readable ONNX type for sequences and maps (ZipMap outputs)."""
    if t.HasField("tensor_type"):
        return f"tensor({_onnx_name(_TENSOR_DTYPES.get(t.tensor_type.elem_type, '?'))})"
    if t.HasField("sequence_type"):
        return f"seq({_type_text(t.sequence_type.elem_type)})"
    if t.HasField("map_type"):
        key = _TENSOR_DTYPES.get(t.map_type.key_type, "?")
        return f"map({key},{_type_text(t.map_type.value_type)})"
    return "unknown"
