"""External data of an ONNX model: files inside the model's directory only.

A model can keep tensors in other files (`location`, `offset`, `length`).
Those values come from the model, which may come from anyone: before onnx or
onnxruntime open any of them, each location must be a relative path that
stays inside the model's directory (also after following symbolic links), name
a regular file, and the byte range must lie inside that file. Anything else
is invalid input (exit 3) naming the model, the tensor and the location.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mlship.errors import InvalidInputError


def check_external_data(proto: Any, model_path: Path) -> bool:
    """Refuse external data outside `model_path`'s directory; True when the
    model has any (so the caller loads it), False otherwise."""
    base = model_path.parent  # where onnx and onnxruntime look, as given
    found = False
    for tensor in _tensors(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        found = True
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{model_path}: tensor {tensor.name!r} keeps its data in {location!r}"
        target = _inside(base, location, where)
        try:
            offset = int(info.get("offset") or 0)
            length = int(info["length"]) if info.get("length") else None
        except ValueError:
            raise InvalidInputError(f"{where}: offset and length must be whole numbers") from None
        size = target.stat().st_size
        if offset < 0 or (length is not None and length < 0) or offset + (length or 0) > size:
            raise InvalidInputError(f"{where}: bytes {offset}..{offset + (length or 0)} are beyond the file's "
                                    f"{size} bytes", hint="The model or its data file is truncated or does not match")
    return found


def _inside(base: Path, location: str, where: str) -> Path:
    """The file `location` names under `base`, or an error saying why not."""
    hint = "Keep external data files in the model's directory and refer to them by relative path"
    if not location or "\0" in location:
        raise InvalidInputError(f"{where}: not a file name", hint=hint)
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.drive or windows.root:
        raise InvalidInputError(f"{where}: an absolute path is not allowed", hint=hint)
    if ".." in PurePosixPath(location.replace("\\", "/")).parts:
        raise InvalidInputError(f"{where}: the path leads outside the model's directory", hint=hint)
    full = base / location
    if full.is_symlink():  # onnx refuses them too; a link may point anywhere
        raise InvalidInputError(f"{where}: a symbolic link is not allowed", hint=hint)
    real = Path(os.path.realpath(full))
    if not real.is_relative_to(os.path.realpath(base)):  # a linked directory on the way out
        raise InvalidInputError(f"{where}: the path leads outside the model's directory", hint=hint)
    if not real.is_file():
        raise InvalidInputError(f"{where}: the file is missing" if not real.exists() else f"{where}: not a file",
                                hint="Copy the model together with its data files")
    return real


def _tensors(proto: Any) -> Iterator[Any]:
    """Every tensor a model holds: initializers, sparse ones, and tensors in
    node attributes, in every graph, subgraph and function."""
    yield from _graph_tensors(proto.graph)
    for function in proto.functions:
        for node in function.node:
            yield from _attribute_tensors(node)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: Any) -> Iterator[Any]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sparse in attr.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for graph in attr.graphs:
            yield from _graph_tensors(graph)
