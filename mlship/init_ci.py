"""What `mlship init --ci` puts in mlship.yaml so its pipeline runs: the `staging` target its push
and promote go to, and the image repository under the registry it builds for.

Given as flags (`--target URL`, `--registry HOST/REPO`) they are written as values; with `--ci` and
no value they are written as commented TODO entries, so `mlship config show` passes either way and
the file says what the pipeline still needs.
"""

from __future__ import annotations

from typing import Any

from mlship.errors import UsageError

STAGING = "staging"  # the target name the CI templates push and promote to
REGISTRY_PLACEHOLDER = "__MLSHIP_REGISTRY__"
EXAMPLE_REGISTRY = "registry.local:5000/ml"
_CI_DEFAULT_REGISTRY = {"github": "${{ vars.STAGING_REGISTRY }}", "gitlab": "registry.internal:5000/ml"}


def targets_lines(target: str | None, ci: str | None) -> str:
    """The `targets:` line(s): `staging` from --target, a TODO for it with --ci, else empty."""
    if target is not None:
        return (f"targets:\n  {STAGING}: {flow({'type': target_type(target), 'url': target})}"
                "   # where the CI pipeline pushes and promotes\n")
    if ci is not None:
        return ("targets: {}\n"
                f"#  {STAGING}: {{type: file, url: file:///srv/models}}   # TODO: the target the CI pipeline "
                f"pushes and promotes to (or: mlship init --ci {ci} --target URL)\n")
    return "targets: {}\n"


def repository_line(name: str, registry: str | None, ci: str | None) -> str:
    """`build.image.repository`: under --registry, a TODO with --ci, else a commented example."""
    if registry is not None:
        return f"    repository: {flow(image_repository(registry, name))}\n"
    example = f"    # repository: {EXAMPLE_REGISTRY}/{name}"
    if ci is not None:
        return example + f"   # TODO: the CI pipeline's STAGING_REGISTRY/MODEL (or: mlship init --ci {ci} --registry HOST/REPO)\n"
    return example + "\n"


def pipeline_registry(kind: str, registry: str | None) -> str:
    """What the pipeline's STAGING_REGISTRY is set to: --registry, or the template's default."""
    return registry if registry is not None else _CI_DEFAULT_REGISTRY[kind]


def image_repository(registry: str, name: str) -> str:
    """The repository the pipeline builds into: `$STAGING_REGISTRY/$MODEL`."""
    return f"{registry.rstrip('/')}/{name}"


def check_registry(registry: str | None) -> None:
    """Refuse a --registry that is not HOST[:PORT]/REPO (it becomes an image reference and a YAML value)."""
    import re

    if registry is not None and not re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+/?", registry):
        raise UsageError(f"--registry {registry}: not HOST[:PORT]/REPO", hint="e.g. --registry registry.internal:5000/ml")


def target_type(target: str) -> str:
    """The type of the target a --target URL names; refused (exit 2) when no installed target plugin
    takes it, or takes no artifacts (a registry), or rejects the URL."""
    from mlship.targets.base import open_target

    return type(open_target(target, {})).name


def check_existing(config: Any, name: str, target: str | None, registry: str | None) -> None:
    """With an existing mlship.yaml (kept by `init --ci`), refuse flags it does not already match:
    init never edits a file it did not write."""
    staging = config.targets.get(STAGING)
    if target is not None and (staging is None or getattr(staging, "url", None) != target):
        raise UsageError(f"{config.source} has no targets.{STAGING} with url {target}",
                         hint=f"Add under targets: {STAGING}: {flow({'type': target_type(target), 'url': target})}")
    if registry is not None and config.build.image.repository != image_repository(registry, name):
        raise UsageError(f"{config.source}: build.image.repository is not {image_repository(registry, name)}",
                         hint=f"Set build.image.repository: {image_repository(registry, name)}")


def flow(value: object) -> str:
    """One line of YAML for a value that may hold any text."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip().removesuffix("\n...").strip()
