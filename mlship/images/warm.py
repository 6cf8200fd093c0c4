"""What `mlship serve` imports, to be compiled into an image's bytecode.

`python -m mlship.images.warm` imports the serving path (the CLI, the server,
the app, the protocol and the prediction log, uvicorn's uvloop and httptools
parts, onnx and onnxruntime) and prints the source file of every module it
loaded from site-packages, one per line. The images compile exactly these
(`compileall -i -`, or deps.bytecode): a container starts without compiling
anything it needs, and the image carries no bytecode for modules serving never
loads (about half of the dependencies' .pyc bytes).
"""

from __future__ import annotations

import importlib
import sys

SERVING = ("mlship.cli", "mlship.cli.serve", "mlship.serve.server", "mlship.serve.app", "mlship.serve.binary",
           "mlship.predlog.writer", "mlship.model.runner", "onnx", "onnxruntime", "numpy", "uvicorn.main",
           "uvicorn.loops.uvloop", "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on", "orjson",
           "msgspec")


def serving_sources() -> list[str]:
    """The .py files of site-packages modules loaded by importing the serving path (sorted)."""
    for name in SERVING:
        importlib.import_module(name)
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    return sorted(f for f in files if f and f.endswith(".py") and "site-packages" in f)


if __name__ == "__main__":
    print("\n".join(serving_sources()))
