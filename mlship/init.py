"""`mlship init`: write a commented mlship.yaml for a model."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from pydantic import BaseModel

from mlship.errors import UsageError
from mlship.fsutil import atomic_write
from mlship.templates import template_text


class InitRequest(BaseModel):
    """Start a project: mlship.yaml at `output` (from `model`'s signature when given), and with
    `ci` (github or gitlab) a CI pipeline beside it. With `sample` (and `labels`, its labels
    column), `sample:`, `check.labels` and, for a model without feature names, `features:` from
    the sample's header."""

    model: Path | None = None
    sample: Path | None = None
    labels: str | None = None
    output: Path = Path("mlship.yaml")
    force: bool = False
    ci: str | None = None


def init_project(request: InitRequest) -> list[Path]:
    """Write what the request asks for; the files written. Every refusal comes before any
    write; with `ci`, an existing mlship.yaml is kept and only the pipeline is written."""
    written = []
    ci_file = None
    if request.ci is not None:
        ci_file = request.output.resolve().parent / ci_path(request.ci)
        refuse_existing(ci_file, force=request.force)
    if not (request.ci and request.output.exists()):
        text = render_config(request.model, request.output.resolve().parent, request.sample, request.labels)
        write_config(request.output, text, force=request.force)
        written.append(request.output)
    if ci_file is not None:
        from mlship.config import load_config

        name = load_config(request.output).name or "my-model"
        write_config(ci_file, render_ci(request.ci, name), force=request.force)
        written.append(ci_file)
    return written


def render_config(model: Path | None, base_dir: Path, sample: Path | None = None, labels: str | None = None) -> str:
    """The mlship.yaml text, with the model's signature as comments."""
    name, signature = "my-model", "# (run `mlship init --model M.onnx` to fill in the signature)\n"
    model_ref, loaded = "model.onnx", None
    if model is not None:
        from mlship.model.load import default_model_name, load_model
        from mlship.model.signature import signature_of

        loaded = load_model(model)
        name = _slug(default_model_name(model))
        model_ref = _relative(model, base_dir)
        signature = _signature_comment(signature_of(loaded.proto), loaded.sha256)
    return Template(template_text("mlship.yaml")).substitute(
        name=name, version="0.1.0", model=model_ref, signature=signature,
        sample=_sample_lines(loaded, sample, labels, base_dir),
        labels=f"  labels: {_flow(labels)}\n" if labels else "  # labels: label                  # a column of the sample, or a file\n",
    )


def _sample_lines(model, sample: Path | None, labels: str | None, base_dir: Path) -> str:
    """`sample:` and, when the model needs them, `features:` from the sample's header."""
    if sample is None:
        if labels is not None:
            raise UsageError("--labels names a column of the sample", hint="Pass --sample FILE too")
        return "# sample: data/sample.csv\n"
    from mlship.data import read_table

    header = list(read_table(sample).columns)  # a sample is small; reading it whole also checks it
    if labels is not None and labels not in header:
        raise UsageError(f"--labels {labels}: {sample} has no such column", hint=f"It has: {', '.join(header)}")
    lines = f"sample: {_flow(_relative(sample, base_dir))}\n"
    if model is None:
        return lines
    from mlship.model.features import features_from_header
    from mlship.model.signature import signature_of

    features = features_from_header(signature_of(model.proto), [c for c in header if c != labels])
    if features is None:
        return lines
    return lines + ("# Columns of the model's 2-D input(s), in the order it was trained on (from the sample's header):\n"
                    f"features: {_flow(features)}\n")


def _flow(value: object) -> str:
    """One line of YAML for a value that may hold any text."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip().removesuffix("\n...").strip()


CI_FILES = {"github": ("ci/github-actions.yml", ".github/workflows/mlship.yml"),
            "gitlab": ("ci/gitlab-ci.yml", ".gitlab-ci.yml")}


def ci_path(kind: str) -> str:
    """Where the CI pipeline for github or gitlab goes, relative to the project."""
    if kind not in CI_FILES:
        raise UsageError(f"--ci {kind}: use github or gitlab")
    return CI_FILES[kind][1]


def render_ci(kind: str, name: str) -> str:
    """The CI pipeline for github or gitlab, for the model `name`."""
    ci_path(kind)
    return template_text(CI_FILES[kind][0]).replace("__MLSHIP_NAME__", _slug(name))  # CI files use $ themselves


def refuse_existing(path: Path, *, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="Pass --force to overwrite it")


def write_config(path: Path, text: str, *, force: bool) -> None:
    """Write atomically; refuse to replace an existing file without force."""
    refuse_existing(path, force=force)
    atomic_write(path, text.encode("utf-8"))


def _signature_comment(signature, sha256: str) -> str:
    lines = [f"# Detected signature (sha256 {sha256[:12]}…):"]
    for kind, specs in (("input ", signature.inputs), ("output", signature.outputs)):
        for spec in specs:
            lines.append(f"#   {kind} {spec.name}: {spec.type} {spec.shape_text()}")
    if signature.feature_names:
        lines.append(f"#   features ({len(signature.feature_names)}): {', '.join(signature.feature_names)}")
    return "\n".join(lines) + "\n"


def _relative(model: Path, base_dir: Path) -> str:
    try:
        return str(model.resolve().relative_to(base_dir.resolve()))
    except ValueError:
        return str(model.resolve())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "my-model"
