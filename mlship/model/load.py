"""Load an ONNX file with errors a person can act on."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mlship.errors import InvalidInputError

if TYPE_CHECKING:
    import onnx

# Leading bytes of files people mistake for models.
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"PK\x03\x04": "a zip archive (a PyTorch .pt or Keras file?)",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
    b"\x80\x02": "a Python pickle",
    b"\x80\x03": "a Python pickle",
    b"\x80\x04": "a Python pickle",
    b"\x80\x05": "a Python pickle",
    b"\x93NUMPY": "a NumPy array",
    b"PAR1": "a Parquet file",
    b"GGUF": "a GGUF model",
}


@dataclass(frozen=True)
class ModelFile:
    """A parsed ONNX model and facts about its file."""

    path: Path
    proto: "onnx.ModelProto"
    sha256: str
    size: int
    external_data: bool = False  # some tensors were read from other files beside the model

    def single_file(self) -> bytes:
        """The model as one file: its own bytes, or, when it keeps tensors in other files (as
        torch.onnx.export writes model.onnx.data), the model with that data inline, so a copy
        made elsewhere (a bundle, an image) needs no other file. Past protobuf's 2 GB a model
        cannot be one file: InvalidInputError."""
        if not self.external_data:
            return self.path.read_bytes()
        try:
            return self.proto.SerializeToString()
        except ValueError as exc:
            raise InvalidInputError(f"{self.path}: with its external data the model is too large for one file "
                                    f"({_first_line(exc)})") from None

    @property
    def opsets(self) -> dict[str, int]:
        """Operator set version per domain ("ai.onnx" for the default domain)."""
        return {(o.domain or "ai.onnx"): o.version for o in self.proto.opset_import}

    @property
    def metadata(self) -> dict[str, str]:
        """The model's metadata_props."""
        return {p.key: p.value for p in self.proto.metadata_props}


def default_model_name(path: Path) -> str:
    """The file's stem, or its directory's name for a generic model.onnx."""
    return path.stem if path.stem != "model" else path.resolve().parent.name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (always read: verification uses this)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# Digests taken on the push path (an upload's own read, the up-front check), by file identity.
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def sha256_file_once(path: Path, compute: Callable[[Path], str] | None = None) -> str:
    """The sha256 of a file this process is pushing: hashed once (same inode, size and mtime)
    however many steps ask, so a 500 MB push reads its artifact for the digest once (`compute`,
    when given, hashes it: a push's shared read reuses what it hashed already). Only for files
    this process reads as its own input; checks of what came from elsewhere use sha256_file."""
    key = _stat_key(path)
    if key not in _DIGESTS:
        _DIGESTS[key] = (compute or sha256_file)(path)
    return _DIGESTS[key]


def remember_sha256(path: Path, hexdigest: str) -> str:
    """Record the digest of `path` as it is now, hashed while streaming it elsewhere (an upload)."""
    _DIGESTS[_stat_key(path)] = hexdigest
    return hexdigest


_TEXT_FORMATS = (".txtpb", ".textproto", ".prototxt", ".pbtxt", ".json", ".onnxjson", ".onnxtxt", ".onnxtext")


def _model_proto_class() -> type:
    """onnx.ModelProto without importing the onnx package (its __init__ imports helper,
    compose, numpy_helper, ml_dtypes... ~25 ms, where parsing needs only the generated
    protobuf module). The module is loaded under a private name: protobuf's upb backend
    registers the same descriptors once and hands back the same message classes, so a
    later `import onnx` is an ordinary import (its `onnx.onnx_ml_pb2` included) sharing
    ModelProto. Other protobuf backends import onnx."""
    module = sys.modules.get("onnx.onnx_ml_pb2") or sys.modules.get(_PRIVATE_PB2)
    if module is None:
        from google.protobuf.internal import api_implementation

        spec = importlib.util.find_spec("onnx")
        location = spec and spec.submodule_search_locations and Path(list(spec.submodule_search_locations)[0])
        if api_implementation.Type() != "upb" or not location or not (location / "onnx_ml_pb2.py").is_file():
            import onnx

            return onnx.ModelProto
        spec = importlib.util.spec_from_file_location(_PRIVATE_PB2, location / "onnx_ml_pb2.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[_PRIVATE_PB2] = module
    return module.ModelProto


_PRIVATE_PB2 = "_mlship_onnx_ml_pb2"


def _parse(path: Path) -> tuple["onnx.ModelProto", bytes | None]:
    """The model's protobuf and the bytes it was parsed from (text formats through
    onnx.load_model: None)."""
    if path.suffix.lower() in _TEXT_FORMATS:
        import onnx

        return onnx.load_model(str(path), load_external_data=False), None
    from google.protobuf.message import DecodeError

    data = path.read_bytes()
    proto = _model_proto_class()()
    consumed = proto.ParseFromString(data)
    if consumed is not None and consumed != len(data):  # as onnx.load_model checks
        raise DecodeError(f"Protobuf decoding consumed too few bytes: {consumed} out of {len(data)}")
    return proto, data


def load_model(path: str | Path, *, light: bool = False) -> ModelFile:
    """Read and parse an ONNX model; InvalidInputError (exit 3) when it is not one.

    `light`: parse without importing the onnx package when the model keeps no external
    data (`predict`, where onnxruntime runs it: ~25 ms less before the first chunk)."""
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"model file not found: {path}", hint="Check the path")
    if not path.is_file():
        raise InvalidInputError(f"model path is not a file: {path}")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InvalidInputError(f"cannot read model {path}: {exc.strerror}") from None
    if size == 0:
        raise InvalidInputError(f"model file is empty: {path}")
    kind = next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)
    if kind:
        raise InvalidInputError(f"{path} is not an ONNX model: it is {kind}", hint="Export the model to ONNX first")
    from mlship.model.external_data import check_external_data

    data = None  # the file's bytes, when parsing read them: hashed without reading the file again
    try:
        # External data is read only once every location was checked (inside the model's directory).
        if light:
            proto, data = _parse(path)
        else:
            import onnx

            proto = onnx.load_model(str(path), load_external_data=False)
        external = check_external_data(proto, path)
        if external:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(proto, str(path.parent))
    except InvalidInputError:
        raise
    except (DecodeError, RuntimeError, ValueError, *_validation_error()) as exc:
        raise InvalidInputError(
            f"{path} is not a readable ONNX model: the file is truncated or corrupted ({_first_line(exc)})",
            hint="Export or download it again",
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot load external data: {exc}") from None
    if not proto.HasField("graph") or not proto.graph.output:
        raise InvalidInputError(
            f"{path} is not a complete ONNX model: it has no graph outputs (truncated?)",
            hint="Export or download it again",
        )
    sha256 = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    return ModelFile(path=path, proto=proto, sha256=sha256, size=size, external_data=external)


def _validation_error() -> tuple[type, ...]:
    """onnx.checker.ValidationError when onnx is imported (nothing else raises it)."""
    onnx = sys.modules.get("onnx")
    checker = getattr(onnx, "checker", None)
    return (checker.ValidationError,) if checker is not None else ()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
