"""Dependencies for an image, resolved on the host as wheels.

The image installs them with `pip install --no-index`, so nothing inside the
build reaches a network. Versions are pinned to what runs here, so the image
serves with the same libraries that checked the model. Wheels are cached
under ~/.cache/mlship/wheels; a cached set is used without any index.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from mlship.errors import ServiceError, UsageError

# What `mlship serve` imports at run time (not scipy, pyarrow, boto3, docker).
RUNTIME = ("typer", "rich", "pydantic", "pyyaml", "onnx", "onnxruntime", "numpy",
           "uvicorn", "httptools", "uvloop", "orjson", "msgspec")

ARCH = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm64/v8": "aarch64"}


def requirements() -> list[str]:
    """RUNTIME pinned to the versions installed here."""
    pins = []
    for name in RUNTIME:
        try:
            pins.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            raise UsageError(f"building an image needs '{name}' installed here to pin its version",
                             hint="Install it with: pip install 'mlship[serve]'") from None
    return pins


def platform_tags(platform: str) -> list[str]:
    """pip --platform tags for a Docker platform (glibc 2.17 to 2.39)."""
    arch = ARCH.get(platform)
    if arch is None:
        raise UsageError(f"--platform {platform}: use one of {', '.join(ARCH)}")
    return [f"manylinux_2_{minor}_{arch}" for minor in range(39, 16, -1)] + [f"manylinux2014_{arch}", f"linux_{arch}"]


def download_wheels(dest: Path, *, platform: str, python: str) -> list[str]:
    """Wheels for requirements() into `dest`; the pinned requirement strings."""
    pins = requirements()
    key = hashlib.sha256(f"{platform}|{python}|{'|'.join(pins)}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("MLSHIP_WHEEL_CACHE", Path.home() / ".cache" / "mlship" / "wheels")) / key
    cache.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", python,
            "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}", "--dest", str(cache),
            "--disable-pip-version-check", "--quiet"]
    for tag in platform_tags(platform):
        base += ["--platform", tag]
    offline = subprocess.run(base + ["--no-index", "--find-links", str(cache), *pins], capture_output=True, text=True)
    if offline.returncode != 0:
        online = subprocess.run(base + [*pins], capture_output=True, text=True)
        if online.returncode != 0:
            reason = (online.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise ServiceError(f"cannot download wheels for {platform} / Python {python}: {reason}",
                               hint="Check the package index (PIP_INDEX_URL) or fill the wheel cache")
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in cache.glob("*.whl"):
        target = dest / wheel.name
        if not target.exists():
            os.link(wheel, target) if _same_device(wheel, dest) else target.write_bytes(wheel.read_bytes())
    return pins


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def mlship_wheel(dest: Path) -> Path:
    """A wheel of the running mlship: rebuilt from its source tree, or zipped
    from the installed files."""
    import mlship

    root = Path(mlship.__file__).resolve().parent.parent
    dest.mkdir(parents=True, exist_ok=True)
    if (root / "pyproject.toml").is_file() and (root / "templates").is_dir():
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest), str(root)]
        proc = subprocess.run(command + ["--no-build-isolation"], capture_output=True, text=True)
        if proc.returncode != 0:  # no hatchling here: let pip fetch the build backend
            proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ServiceError(f"cannot build mlship's wheel from {root}: {proc.stderr.strip().splitlines()[-1:]}")
        return next(dest.glob("mlship-*.whl"))
    return _wheel_from_install(dest)


def _wheel_from_install(dest: Path) -> Path:
    """Zip an installed (non-editable) mlship back into a wheel, RECORD included."""
    dist = md.distribution("mlship")
    version = dist.version
    path = dest / f"mlship-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in dist.files or []:
            if file.suffix == ".pyc" or "__pycache__" in file.parts or str(file).startswith(".."):
                continue
            zf.write(file.locate(), str(file))
    return path


def mlship_fingerprint() -> str:
    """A hash of the running mlship's files (source tree or installed RECORD), cheap to compute."""
    import mlship

    root = Path(mlship.__file__).resolve().parent.parent
    sha = hashlib.sha256()
    if (root / "pyproject.toml").is_file() and (root / "templates").is_dir():
        files = [root / "pyproject.toml", *sorted((root / "mlship").rglob("*")), *sorted((root / "templates").rglob("*"))]
        for path in (f for f in files if f.is_file() and "__pycache__" not in f.parts):
            sha.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    else:
        sha.update(md.distribution("mlship").read_text("RECORD").encode())
    return sha.hexdigest()
