"""What the installed onnxruntime supports, asked of onnxruntime itself.

onnxruntime has no API for its highest opset or IR version, but it names
them when it refuses a model stamped with a newer one; we ask once with tiny
probe models and remember the answer.
"""

from __future__ import annotations

import functools
import re

from pydantic import BaseModel

_PROBE_VERSION = 10_000


class RuntimeSupport(BaseModel):
    """Versions the installed onnxruntime runs."""

    onnxruntime: str
    max_ir_version: int | None
    max_opsets: dict[str, int]
    providers: list[str]


@functools.lru_cache(maxsize=1)
def runtime_support() -> RuntimeSupport:
    """Probe onnxruntime for its highest IR version and opsets."""
    import onnxruntime as ort

    max_ir = _probe(ir_version=_PROBE_VERSION, pattern=r"max supported IR version: (\d+)")
    opsets = {}
    for domain in ("ai.onnx", "ai.onnx.ml"):
        found = _probe(domain=domain, opset=_PROBE_VERSION, pattern=r"is till opset (\d+)")
        if found is not None:
            opsets[domain] = found
    return RuntimeSupport(
        onnxruntime=ort.__version__,
        max_ir_version=max_ir,
        max_opsets=opsets,
        providers=list(ort.get_available_providers()),
    )


def _probe(*, pattern: str, ir_version: int = 8, domain: str = "ai.onnx", opset: int = 13) -> int | None:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    imports = [helper.make_opsetid("", opset if domain == "ai.onnx" else 13)]
    if domain != "ai.onnx":
        imports.append(helper.make_opsetid(domain, opset))
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail type
        match = re.search(pattern, str(exc))
        return int(match.group(1)) if match else None
    return None


def compatibility_problems(opsets: dict[str, int], ir_version: int, support: RuntimeSupport) -> list[str]:
    """Reasons the installed onnxruntime may not run a model, if any."""
    problems = []
    if support.max_ir_version is not None and ir_version > support.max_ir_version:
        problems.append(
            f"IR version {ir_version} is newer than onnxruntime {support.onnxruntime} supports "
            f"(max {support.max_ir_version})"
        )
    for domain, version in opsets.items():
        limit = support.max_opsets.get(domain)
        if limit is not None and version > limit:
            problems.append(
                f"opset {domain} {version} is newer than onnxruntime {support.onnxruntime} supports (max {limit})"
            )
    return problems
