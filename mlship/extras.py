"""Lazy imports of optional dependencies, with a ready install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlship.errors import MissingExtraError

# module -> (what it is for, the extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "pyarrow": ("reading and writing Parquet", "parquet"),
    "boto3": ("S3, ECR and SageMaker", "aws"),
    "botocore": ("S3, ECR and SageMaker", "aws"),
    "google": ("Google Cloud Storage (gs://)", "gcp"),
    "azure": ("Azure Blob Storage (az://)", "azure"),
    "tuf": ("TUF metadata for edge releases", "edge"),
    "securesystemslib": ("TUF metadata for edge releases", "edge"),
    "docker": ("building images on the Docker engine", "docker"),
    "ray": ("the Ray batch engine", "ray"),
    "cryptography": ("signing and verifying edge bundles", "edge"),
}


def require(module: str) -> ModuleType:
    """Import `module`, or fail with a hint naming the mlship extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        purpose, extra = EXTRAS.get(top, (top, "all"))
        raise MissingExtraError(
            f"{purpose} requires the Python package '{top}', which is not installed ({exc})",
            hint=f"Install it with: pip install 'mlship[{extra}]'",
        ) from exc
