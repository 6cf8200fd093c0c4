"""Which data columns feed which model input.

A converter's default export takes one matrix (`X [N, k]`) with no column
names. Names come, in this order, from the `--features` flag, from
`features:` in mlship.yaml (a list for a single 2-D input, a mapping
`input: [columns]` for several) or from the model's `mlship.feature_names`
metadata. Without names a 2-D input `X` also takes the columns `X_0 …
X_{k-1}`, the form `predict` writes outputs in. A column's position is never
taken as its meaning: data whose names fit none of these is refused, naming
what the model expects and what the file has.
"""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, Field

from mlship.errors import UsageError
from mlship.model.signature import Signature, TensorSpec

# `features:` as written in mlship.yaml: a list, or a mapping of input -> columns.
FeatureSpec = Union[list[str], dict[str, list[str]]]



class DeclaredFeatures(BaseModel):
    """Column names given outside the model, and where they were given."""

    columns: FeatureSpec = Field(description="A list for a single 2-D input, or input -> columns.")
    source: str = Field(description="Where, for messages: --features, or mlship.yaml's path and key.")


FEATURES_HINT = ("Name the columns without editing the model: `features:` in mlship.yaml "
                 "(`mlship init --model M --sample S` writes it from the sample's header) or --features")


def parse_features_flag(values: list[str] | None) -> FeatureSpec | None:
    """`--features a,b,c` (a single 2-D input) or repeated `--features INPUT=a,b`."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return _columns(values[0], "--features")
    mapping: dict[str, list[str]] = {}
    for value in values:
        name, sep, columns = value.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--features {value!r}: with several --features each is INPUT=col1,col2,…")
        if name.strip() in mapping:
            raise UsageError(f"--features: input {name.strip()!r} is given twice")
        mapping[name.strip()] = _columns(columns, f"--features {name.strip()}")
    return mapping


def _columns(text: str, where: str) -> list[str]:
    columns = [c.strip() for c in text.split(",")]
    if not all(columns):
        raise UsageError(f"{where}: empty column name in {text!r}", hint="Separate column names with commas")
    return columns


def apply_features(signature: Signature, declared: DeclaredFeatures | None) -> Signature:
    """The signature with the declared column names, which take precedence over
    the model's metadata. UsageError (exit 2) names where they were declared
    when they do not fit the model's inputs."""
    if declared is None or not declared.columns:
        return signature
    source = declared.source
    mapping = _as_mapping(signature, declared.columns, source)
    seen: set[str] = set()
    for name, columns in mapping.items():
        _check_input(signature, name, columns, source)
        repeated = sorted(seen & set(columns) | {c for c in columns if columns.count(c) > 1})
        if repeated:
            raise UsageError(f"{source}: column {repeated[0]!r} is named twice", hint="Each column feeds one place")
        seen.update(columns)
    single = mapping.get(signature.inputs[0].name) if len(signature.inputs) == 1 else None
    return signature.model_copy(update={"features": mapping, "feature_names": single, "feature_source": source})


def _as_mapping(signature: Signature, spec: FeatureSpec, source: str) -> dict[str, list[str]]:
    if isinstance(spec, dict):
        return {str(k): [str(c) for c in v] for k, v in spec.items()}
    if len(signature.inputs) != 1:
        names = ", ".join(s.name for s in signature.inputs)
        raise UsageError(f"{source}: a list of columns fits a model with one 2-D input; this one has "
                         f"{len(signature.inputs)} inputs ({names})",
                         hint="Give a mapping of input -> columns, e.g. features: {a: [x1, x2], b: [y1]}")
    return {signature.inputs[0].name: [str(c) for c in spec]}


def _check_input(signature: Signature, name: str, columns: list[str], source: str) -> None:
    spec = next((s for s in signature.inputs if s.name == name), None)
    if spec is None:
        raise UsageError(f"{source}: the model has no input {name!r}",
                         hint=f"Its inputs: {', '.join(s.name for s in signature.inputs)}")
    if spec.shape is not None and len(spec.shape) != 2:
        raise UsageError(f"{source}: input {name!r} is {spec.shape_text()}; named columns feed a 2-D input [N, k]")
    width = spec.shape[1] if spec.shape is not None else None
    if isinstance(width, int) and width > 0 and width != len(columns):
        raise UsageError(f"{source}: input {name!r} {spec.shape_text()} takes {width} columns, "
                         f"{len(columns)} are named: {', '.join(columns)}")
    if not columns:
        raise UsageError(f"{source}: no columns named for input {name!r}")


def indexed_columns(spec: TensorSpec, available: list[str] | dict) -> list[str] | None:
    """`X_0 … X_{k-1}` for a 2-D input X when the data has them (all k of a
    fixed width; for a dynamic width, the run from X_0 on). None otherwise."""
    if spec.shape is None or len(spec.shape) != 2:
        return None
    width = spec.shape[1]
    if isinstance(width, int) and width > 0:
        names = [f"{spec.name}_{j}" for j in range(width)]
        return names if all(n in available for n in names) else None
    names = []
    while f"{spec.name}_{len(names)}" in available:
        names.append(f"{spec.name}_{len(names)}")
    return names or None


def input_columns(signature: Signature, spec: TensorSpec, available: list[str] | dict) -> list[str] | None:
    """The columns that feed `spec`, in order, or None when the data lacks them.

    A column named as the input holds it whole; then declared features; then
    `X_0 … X_{k-1}`. Declared features that are absent make it None."""
    if spec.name in available:
        return [spec.name]
    declared = signature.features.get(spec.name)
    if declared:
        return declared if all(c in available for c in declared) else None
    return indexed_columns(spec, available)


def expected_columns(signature: Signature, spec: TensorSpec) -> str:
    """What data must hold for `spec`, in words, for error messages."""
    declared = signature.features.get(spec.name)
    if declared:
        return f"columns {', '.join(declared)} (features from {signature.feature_source})"
    if spec.shape is not None and len(spec.shape) == 2:
        width = spec.shape[1]
        if isinstance(width, int) and width > 0:
            return f"a column {spec.name!r} of lists, or columns {spec.name}_0 … {spec.name}_{width - 1}"
        return f"a column {spec.name!r} of lists, or columns {spec.name}_0, {spec.name}_1, …"
    return f"a column {spec.name!r}"


def request_fields(signature: Signature) -> list[str]:
    """The named fields a JSON object per row carries (/predict): each input's
    declared columns, otherwise the input's own name."""
    fields: list[str] = []
    for spec in signature.inputs:
        fields.extend(signature.features.get(spec.name) or [spec.name])
    return fields


def features_from_header(signature: Signature, header: list[str]) -> FeatureSpec | None:
    """`features:` for data with these columns (labels already left out), or
    None when the model's inputs find their columns without it.

    Only one input may lack its columns: it takes every column the other
    inputs do not use, in the header's order. With two or more, which column
    feeds which input cannot be read from a header: UsageError asks for the
    mapping instead of guessing."""
    lacking = [s for s in signature.inputs if input_columns(signature, s, header) is None]
    if not lacking:
        return None
    if len(lacking) > 1:
        names = ", ".join(s.name for s in lacking)
        raise UsageError(f"the sample's columns do not name inputs {names}, and which columns feed which "
                         f"cannot be told from a header", hint="Write `features: {input: [columns], …}` in "
                         "mlship.yaml, or name the columns INPUT_0, INPUT_1, …")
    spec = lacking[0]
    used = {c for s in signature.inputs if s is not spec for c in input_columns(signature, s, header) or []}
    columns = [c for c in header if c not in used]
    declared = DeclaredFeatures(columns={spec.name: columns}, source="the sample's header")
    apply_features(signature, declared)  # the same checks as when the config is read
    return columns if len(signature.inputs) == 1 else {spec.name: columns}
