"""`mlship init`: write a commented mlship.yaml for a model."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from pydantic import BaseModel

from mlship.errors import UsageError
from mlship.fsutil import atomic_write
from mlship.init_ci import REGISTRY_PLACEHOLDER, check_existing, check_registry, flow as _flow
from mlship.init_ci import pipeline_registry, repository_line, target_type, targets_lines
from mlship.templates import template_text


class InitRequest(BaseModel):
    """Start a project: mlship.yaml at `output` (from `model`'s signature when given), and with
    `ci` (github or gitlab) a CI pipeline beside it. With `sample` (and `labels`, its labels
    column), `sample:`, `check.labels` and, for a model without feature names, `features:` from
    the sample's header. `target` (a URL) becomes the `staging` target and `registry`
    (HOST/REPO) the image repository the pipeline builds into; with `ci` and none given, both are
    commented TODO entries."""

    model: Path | None = None
    sample: Path | None = None
    labels: str | None = None
    output: Path = Path("mlship.yaml")
    force: bool = False
    ci: str | None = None
    target: str | None = None
    registry: str | None = None


def init_project(request: InitRequest) -> list[Path]:
    """Write what the request asks for; the files written. Every refusal comes before any
    write; with `ci`, an existing mlship.yaml is kept and only the pipeline is written."""
    written = []
    ci_file = None
    check_registry(request.registry)
    if request.target is not None:
        target_type(request.target)  # refused here, before any write
    if request.ci is not None:
        ci_file = request.output.resolve().parent / ci_path(request.ci)
        refuse_existing(ci_file, force=request.force)
    if not (request.ci and request.output.exists()):
        text = render_config(request.model, request.output.resolve().parent, request.sample, request.labels,
                             ci=request)
        write_config(request.output, text, force=request.force)
        written.append(request.output)
    if ci_file is not None:
        from mlship.config import load_config

        config = load_config(request.output)
        name = _slug(config.name or "my-model")
        check_existing(config, name, request.target, request.registry)
        write_config(ci_file, render_ci(request.ci, name, request.registry), force=request.force)
        written.append(ci_file)
    return written


def render_config(model: Path | None, base_dir: Path, sample: Path | None = None, labels: str | None = None,
                  ci: InitRequest | None = None) -> str:
    """The mlship.yaml text, with the model's signature as comments; with `ci`, what its pipeline uses."""
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
        targets=targets_lines(ci and ci.target, ci and ci.ci),
        repository=repository_line(name, ci and ci.registry, ci and ci.ci),
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


CI_FILES = {"github": ("ci/github-actions.yml", ".github/workflows/mlship.yml"),
            "gitlab": ("ci/gitlab-ci.yml", ".gitlab-ci.yml")}


def ci_path(kind: str) -> str:
    """Where the CI pipeline for github or gitlab goes, relative to the project."""
    if kind not in CI_FILES:
        raise UsageError(f"--ci {kind}: use github or gitlab")
    return CI_FILES[kind][1]


def render_ci(kind: str, name: str, registry: str | None = None) -> str:
    """The CI pipeline for github or gitlab, for the model `name`, building into `registry`."""
    ci_path(kind)
    text = template_text(CI_FILES[kind][0])  # CI files use $ themselves: placeholders, not string.Template
    return text.replace("__MLSHIP_NAME__", _slug(name)).replace(REGISTRY_PLACEHOLDER, pipeline_registry(kind, registry))


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
