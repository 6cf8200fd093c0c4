"""Files under templates/: shipped inside the wheel as mlship/templates/."""

from __future__ import annotations

from pathlib import Path

from mlship.errors import MlshipError

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """The installed copy (in the wheel), else the source checkout's templates/."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise MlshipError("mlship's templates are missing from this installation", hint="Reinstall mlship")


def template_text(name: str) -> str:
    """The text of one template, e.g. "mlship.yaml"."""
    path = templates_dir() / name
    if not path.is_file():
        raise MlshipError(f"template not found: {path}", hint="Reinstall mlship")
    return path.read_text(encoding="utf-8")
