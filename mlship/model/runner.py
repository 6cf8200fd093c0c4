"""The one way mlship runs a model: an onnxruntime session with its signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlship.errors import InvalidInputError
from mlship.model.features import DeclaredFeatures, apply_features
from mlship.model.load import ModelFile
from mlship.model.providers import (PROVIDERS, ProviderReport, ProviderRequest, report_for, session_providers,
                                    unavailable_error)
from mlship.model.signature import Signature, signature_of


class Runner:
    """An onnxruntime InferenceSession plus the model's signature.

    Shared by check, serve, predict and edge so every command runs a model the
    same way (same providers, thread settings and error messages).
    `features` names the columns of 2-D inputs over the model's metadata;
    `providers` the execution providers, best first (CPU when not given), and
    `self.providers` reports what the session runs on; `signature` is
    `runner_signature(model, features)` when the caller has it already (predict
    plans its reads while the session starts). `spinning=False` lets
    onnxruntime's idle pool threads sleep instead of spinning: a server's
    event loop and its other workers need that CPU.
    """

    def __init__(self, model: ModelFile, *, threads: int | None = None,
                 features: DeclaredFeatures | None = None, providers: ProviderRequest | None = None,
                 spinning: bool = True, signature: Signature | None = None) -> None:
        import onnxruntime as ort

        self.model = model
        self.signature: Signature = signature if signature is not None else runner_signature(model, features)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = list(ort.get_available_providers())
        wanted, missing = session_providers(providers, available)
        try:
            self.session = ort.InferenceSession(str(model.path), options, providers=wanted)
        except Exception as exc:  # onnxruntime's Fail/InvalidGraph/NotImplemented
            raise InvalidInputError(f"{model.path}: onnxruntime cannot load the model: {_short(exc)}") from None
        self.providers: ProviderReport = self._provider_report(providers, wanted, missing, available)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._run = self._fast_run() or self.session.run

    def _fast_run(self) -> Callable[[list[str], dict[str, Any]], Any] | None:
        """On CPU alone, the session's own C++ run when every required input is
        fed: the Python wrapper's other checks are for device values, graph capture
        and provider fallback, none of which a CPU session has, and cost ~1-2 us a
        run (a lone request's). Feeds missing an input take the wrapper's way, for
        its message."""
        session = self.session
        inner = getattr(session, "_sess", None)
        if list(session.get_providers()) != ["CPUExecutionProvider"] or not callable(getattr(inner, "run", None)):
            return None
        required = frozenset(i.name for i in session.get_inputs() if not i.type.startswith("optional"))
        wrapped = session.run

        def run(names: list[str], feeds: dict[str, Any]) -> Any:
            return inner.run(names, feeds, None) if required.issubset(feeds) else wrapped(names, feeds)
        return run

    def _provider_report(self, request: ProviderRequest | None, wanted: list[str], missing: list[str],
                         available: list[str]) -> ProviderReport:
        """onnxruntime drops a listed provider that fails to start (a CUDA build without its
        libraries) with only a log line: that counts as unavailable too."""
        used = list(self.session.get_providers())
        dropped = [short for short, name in PROVIDERS.items() if name in wanted and name not in used]
        if dropped and not (request and request.fallback):
            raise unavailable_error(dropped, used, request.source if request else "default")
        return report_for(request, used, missing + dropped, available)

    @classmethod
    def from_path(cls, path: str | Path, *, threads: int | None = None,
                  features: DeclaredFeatures | None = None, providers: ProviderRequest | None = None) -> "Runner":
        from mlship.model.load import load_model

        return cls(load_model(path), threads=threads, features=features, providers=providers)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """Run once; outputs by name. InvalidInputError when the inputs do not fit."""
        try:
            values = self._run(self.output_names, feeds)
        except Exception as exc:
            raise InvalidInputError(f"{self.model.path}: inference failed: {_short(exc)}") from None
        return dict(zip(self.output_names, values))


def runner_signature(model: ModelFile, features: DeclaredFeatures | None = None) -> Signature:
    """The signature a Runner of `model` has, without starting onnxruntime."""
    return apply_features(signature_of(model.proto), features)


def _short(exc: BaseException) -> str:
    """onnxruntime messages start with a C++ source location; keep the reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "] : " in text:
        text = text.split("] : ", 1)[1]
    marker = text.find(") ")
    if text.startswith(("FAIL", "INVALID", "NOT_IMPLEMENTED")) or "onnxruntime_src" in text:
        text = text[marker + 2:] if marker != -1 else text
    return text
