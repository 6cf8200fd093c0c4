"""Which onnxruntime execution providers a Runner uses, and what it reports.

A request names providers by short name in order of preference (`--provider
cuda,cpu`, `runtime.providers` in mlship.yaml). A provider that onnxruntime
cannot use here is a usage error naming what it offers, unless fallback is
allowed: then the session runs on what is left (CPU at the end) and the
report says what was dropped.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mlship.errors import UsageError

# Short names users type -> onnxruntime's provider names.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
CPU = PROVIDERS["cpu"]


class ProviderRequest(BaseModel):
    """The providers asked for, best first, and whether an unavailable one may be dropped."""

    providers: list[str] = Field(default_factory=lambda: ["cpu"], description="Short names, best first.")
    fallback: bool = Field(False, description="Drop unavailable providers (CPU at the end) instead of failing.")
    source: str = Field("default", description="Where the request came from: --provider, mlship.yaml, default.")


class ProviderReport(BaseModel):
    """What a session runs on: the chosen provider, the ones it falls back to per node, what was dropped."""

    requested: list[str] = Field(description="Short names asked for, best first.")
    chosen: str = Field(description="onnxruntime's provider that runs the model first.")
    fallbacks: list[str] = Field(description="Providers after the chosen one (nodes it cannot run go there).")
    unavailable: list[str] = Field(default_factory=list, description="Requested but not usable here (dropped "
                                   "with --provider-fallback).")
    available: list[str] = Field(default_factory=list, description="What onnxruntime offers on this machine.")

    def summary(self) -> str:
        """One line for people: `CPUExecutionProvider (cuda unavailable: fell back to cpu)`."""
        text = self.chosen + (f", then {', '.join(self.fallbacks)}" if self.fallbacks else "")
        if self.unavailable:
            text += f" ({', '.join(self.unavailable)} unavailable here: fell back)"
        return text

    def fallback_note(self) -> str | None:
        """What to tell people when a requested provider was dropped; None when none was."""
        if not self.unavailable:
            return None
        return f"execution provider {', '.join(self.unavailable)} not available here: running on {self.chosen}"


def provider_names(values: list[str]) -> list[str]:
    """["CUDA,cpu", "cpu"] -> ["cuda", "cpu"]: split on commas, any case, each once, in the given order
    (--provider and runtime.providers read alike; onnxruntime warns on a repeated provider)."""
    return list(dict.fromkeys(name.strip().lower() for value in values for name in value.split(",") if name.strip()))


def parse_providers(values: list[str] | None, where: str = "--provider") -> list[str]:
    """["cuda,cpu"] or ["cuda", "cpu"] -> ["cuda", "cpu"]; an unknown name exits 2 naming the known ones."""
    names = provider_names(values or [])
    hint = f"Use one of {', '.join(PROVIDERS)} (comma list or repeated, best first)"
    for name in names:
        if name not in PROVIDERS:
            raise UsageError(f"{where} {name!r}: unknown execution provider", hint=hint)
    if values and not names:  # `--provider ""` or `--provider ,`: an empty list is no choice, not the default
        raise UsageError(f"{where} {','.join(values)!r}: names no execution provider", hint=hint)
    return names


def session_providers(request: ProviderRequest | None, available: list[str]) -> tuple[list[str], list[str]]:
    """onnxruntime provider names to open a session with, and the requested short names dropped.

    Raises UsageError (exit 2) for an unavailable provider without fallback."""
    request = request or ProviderRequest()
    missing = [name for name in request.providers if PROVIDERS[name] not in available]
    if missing and not request.fallback:
        raise unavailable_error(missing, available, request.source)
    chosen = [PROVIDERS[name] for name in request.providers if name not in missing]
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen, missing


def unavailable_error(missing: list[str], available: list[str], source: str) -> UsageError:
    names = ", ".join(f"{name} ({PROVIDERS[name]})" for name in missing)
    return UsageError(f"execution provider {names} not available here (from {source}); this onnxruntime offers "
                      f"{', '.join(available) or 'none'}",
                      hint="Choose one of those, or add --provider-fallback (runtime.provider_fallback) to run on CPU")


def report_for(request: ProviderRequest | None, used: list[str], missing: list[str],
               available: list[str]) -> ProviderReport:
    """The report of an opened session (`used` is session.get_providers())."""
    request = request or ProviderRequest()
    return ProviderReport(requested=request.providers, chosen=used[0] if used else CPU, fallbacks=used[1:],
                          unavailable=missing, available=available)
