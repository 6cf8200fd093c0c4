"""The dependencies layer, made without running anything in the base image.

The pinned wheels (see wheels.py) and mlship's own wheel are unpacked into
/opt/mlship as a virtual environment of the base's Python: site-packages,
pyvenv.cfg, bin/python symlinks, console scripts, dist-info with INSTALLER
and RECORD. The same pruning as templates/Dockerfile applies, and, like its
compileall step, the modules serving imports (mlship/images/warm.py) get
unchecked hash-based bytecode, made by this interpreter when it is the base's
minor version, in a fresh process with a fixed hash seed so the bytes do not
depend on what this process has imported: a container runs as a user that
cannot write /opt/mlship, so without it every start compiled every module
again (seconds). The finished
layer is cached under ~/.cache/mlship/layers by a key of the pins, platform,
Python and mlship's own files, so a model-only rebuild does not redo it.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import marshal
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlship.images import wheels
from mlship.images.layers import Blob, Entry, write_layer
from mlship.errors import InvalidInputError

PREFIX = "opt/mlship"
FORMAT = "2"  # raise when the layer's layout changes, so old cached layers are not reused
SCRIPT = """# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


@dataclass(frozen=True)
class PythonInfo:
    """The base image's interpreter: where it lives and its version (3.11 or 3.11.2)."""

    home: str = "/usr/bin"
    version: str = "3.11"

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def layers_cache() -> Path:
    return Path(os.environ.get("MLSHIP_LAYER_CACHE", Path.home() / ".cache" / "mlship" / "layers"))


def dependencies_layer(*, platform: str, python: PythonInfo, log=lambda line: None) -> Blob:
    """The cached dependencies layer for these pins, platform and Python, made when missing."""
    key = _cache_key(platform, python)
    cache = layers_cache()
    meta_path = cache / f"deps-{key}.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        blob = Blob(**_blob_from_meta(meta, cache))
        if blob.path.is_file() and blob.path.stat().st_size == blob.size:
            log(f"dependencies layer {blob.digest[:19]} from the cache")
            return blob
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlship-deps-") as tmp:
        log("resolving dependencies as wheels")
        wheels.download_wheels(Path(tmp) / "wheels", platform=platform, python=python.minor)
        wheels.mlship_wheel(Path(tmp) / "wheels")
        log("unpacking wheels into /opt/mlship")
        entries = venv_entries(sorted(Path(tmp, "wheels").glob("*.whl")), python)
        partial = Path(tempfile.mkstemp(prefix=".deps-", suffix=".tmp", dir=cache)[1])
        log("writing the dependencies layer")
        blob = write_layer(entries, partial)
    final = cache / f"{blob.digest.split(':')[1]}.tar.gz"
    os.replace(partial, final)
    meta = {"digest": blob.digest, "size": blob.size, "media_type": blob.media_type, "diff_id": blob.diff_id,
            "file": final.name}
    from mlship.fsutil import atomic_write

    atomic_write(meta_path, json.dumps(meta).encode())
    return Blob(**_blob_from_meta(meta, cache))


def _blob_from_meta(meta: dict, cache: Path) -> dict:
    return {"digest": meta["digest"], "size": meta["size"], "media_type": meta["media_type"],
            "diff_id": meta["diff_id"], "path": cache / meta["file"]}


def _cache_key(platform: str, python: PythonInfo) -> str:
    text = "|".join([FORMAT, platform, python.home, python.version, *wheels.requirements(),
                     wheels.mlship_fingerprint()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def venv_entries(wheel_files: list[Path], python: PythonInfo) -> list[Entry]:
    """Layer entries of a virtual environment in /opt/mlship holding these wheels."""
    site = f"{PREFIX}/lib/python{python.minor}/site-packages"
    entries = _venv_skeleton(python)
    for wheel in _newest_per_project(wheel_files):
        entries += _install_wheel(wheel, site)
    return entries + bytecode(entries, python)


# only a fixed hash seed in the environment (it orders set constants); no user or site packages
ISOLATED = {"PYTHONHASHSEED": "0"}
WARM = """
import sys
sys.path.insert(0, sys.argv[1])
from mlship.images.warm import serving_sources
print("\\n".join(serving_sources()))
"""
COMPILER = """
import importlib._bootstrap_external as be, importlib.util, marshal, sys
out = []
for path, data in marshal.loads(sys.stdin.buffer.read()):
    try:
        code = compile(data, "/" + path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        continue
    out.append((path, be._code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False)))
sys.stdout.buffer.write(marshal.dumps(out))
"""


def bytecode(entries: list[Entry], python: PythonInfo) -> list[Entry]:
    """__pycache__ entries (unchecked hash-based .pyc, as `compileall --invalidation-mode
    unchecked-hash` makes) for the site-packages modules serving imports (mlship/images/warm.py;
    every Python file when that cannot run here, e.g. another platform's wheels); none when this
    interpreter is not the base's minor version (its bytecode would not load there)."""
    if python.minor != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return []
    sources = {e.path: e.data for e in entries
               if e.kind == "file" and e.path.endswith(".py") and "/site-packages/" in e.path}
    wanted = _serving_sources(entries) or set(sources)
    items = sorted((path, sources[path]) for path in wanted if path in sources)
    proc = subprocess.run([sys.executable, "-s", "-S", "-c", COMPILER], input=marshal.dumps(items),
                          capture_output=True, check=True, env=ISOLATED)
    tag = f"cpython-{python.minor.replace('.', '')}"
    return [Entry(f"{PurePosixPath(path).parent}/__pycache__/{PurePosixPath(path).stem}.{tag}.pyc", data=pyc)
            for path, pyc in marshal.loads(proc.stdout)]


def _serving_sources(entries: list[Entry]) -> set[str] | None:
    """The layer paths of what `python -m mlship.images.warm` imports, run on a copy of the
    layer's site-packages; None when it cannot run here."""
    site = next((e.path.split("/site-packages/")[0] + "/site-packages" for e in entries
                 if "/site-packages/" in e.path), None)
    if site is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mlship-warm-") as tmp:
        for entry in entries:
            if entry.kind == "file" and entry.path.startswith(site + "/"):
                target = Path(tmp, entry.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(entry.data)
        proc = subprocess.run([sys.executable, "-s", "-S", "-c", WARM, str(Path(tmp, site))], capture_output=True,
                              text=True, env=ISOLATED, cwd=tmp)
        if proc.returncode != 0:
            return None
        root = str(Path(tmp)) + "/"
        return {line[len(root):] for line in proc.stdout.splitlines() if line.startswith(root)}


def _venv_skeleton(python: PythonInfo) -> list[Entry]:
    cfg = (f"home = {python.home}\ninclude-system-site-packages = false\nversion = {python.version}\n"
           f"executable = {python.home}/python{python.minor}\n"
           f"command = {python.home}/python3 -m venv /{PREFIX}\n")
    return [Entry(f"{PREFIX}/pyvenv.cfg", data=cfg.encode()),
            Entry(f"{PREFIX}/bin/python", "symlink", f"{python.home}/python3".encode()),
            Entry(f"{PREFIX}/bin/python3", "symlink", b"python"),
            Entry(f"{PREFIX}/bin/python{python.minor}", "symlink", b"python"),
            Entry(f"{PREFIX}/lib64", "symlink", b"lib"),
            Entry(f"{PREFIX}/include", "dir")]


def _newest_per_project(wheel_files: list[Path]) -> list[Path]:
    """One wheel per project (a wheel cache can hold an older version too)."""
    chosen: dict[str, Path] = {}
    for wheel in sorted(wheel_files, key=lambda w: _version_key(w.name.split("-")[1])):
        chosen[re.sub(r"[-_.]+", "_", wheel.name.split("-")[0]).lower()] = wheel
    return [chosen[name] for name in sorted(chosen)]


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.+]", version))


def _install_wheel(wheel: Path, site: str) -> list[Entry]:
    """A wheel's files as entries: purelib/platlib in site-packages, scripts in bin, RECORD rewritten."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            files = {info.filename: (zf.read(info), bool((info.external_attr >> 16) & 0o111))
                     for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(f"wheel {wheel} is unreadable: {exc}") from None
    dist_info = next(n.split("/")[0] for n in files if n.split("/")[0].endswith(".dist-info"))
    installed: dict[str, tuple[bytes, bool]] = {}
    for name, (data, executable) in files.items():
        target = _target_path(name, site, dist_info)
        if target is None or pruned(target):
            continue
        if target.startswith(f"{PREFIX}/bin/") and data.startswith(b"#!python"):
            data = b"#!/" + PREFIX.encode() + b"/bin/python" + data[len(b"#!python"):]
            executable = True
        installed[target] = (data, executable)
    installed.update(_console_scripts(files.get(f"{dist_info}/entry_points.txt", (b"",))[0]))
    installed[f"{site}/{dist_info}/INSTALLER"] = (b"mlship\n", False)
    installed[f"{site}/{dist_info}/RECORD"] = (_record(installed, site, dist_info), False)
    return [Entry(path, data=data, executable=executable) for path, (data, executable) in installed.items()]


def _target_path(name: str, site: str, dist_info: str) -> str | None:
    if name == f"{dist_info}/RECORD" or name.endswith((".pyc", ".pyi")):
        return None
    head, _, rest = name.partition("/")
    if head.endswith(".data"):
        kind, _, rest = rest.partition("/")
        where = {"purelib": site, "platlib": site, "scripts": f"{PREFIX}/bin", "data": PREFIX,
                 "headers": f"{PREFIX}/include/site/{head[:-5]}"}.get(kind)
        return f"{where}/{rest}" if where and rest else None
    return f"{site}/{name}"


def _console_scripts(text: bytes) -> dict[str, tuple[bytes, bool]]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str
    parser.read_string(text.decode("utf-8", "replace"))
    scripts = {}
    for section in ("console_scripts", "gui_scripts"):
        for name, spec in (parser.items(section) if parser.has_section(section) else []):
            module, _, attr = spec.split("[")[0].strip().partition(":")
            head = attr.split(".")[0]
            body = SCRIPT.format(module=module.strip(), head=head, call=attr.strip())
            scripts[f"{PREFIX}/bin/{name}"] = (f"#!/{PREFIX}/bin/python\n{body}".encode(), True)
    return scripts


def _record(installed: dict[str, tuple[bytes, bool]], site: str, dist_info: str) -> bytes:
    lines = []
    for path in sorted(installed):
        data = installed[path][0]
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{os.path.relpath(path, site)},sha256={digest},{len(data)}")
    lines.append(f"{dist_info}/RECORD,,")
    return ("\n".join(lines) + "\n").encode()


SOURCES_FOR_COMPILERS = (".c", ".cc", ".cpp", ".h", ".hpp", ".pyx", ".pxd", ".pxi", ".a")


def pruned(path: str) -> bool:
    """What templates/Dockerfile removes: tests and tools serving does not use, stubs, caches, pip."""
    parts = PurePosixPath(path).parts
    if "__pycache__" in parts or path.endswith(".pyi"):
        return True
    rel = parts[parts.index("site-packages") + 1:] if "site-packages" in parts else ()
    if not rel:
        return False
    top = rel[0]
    if top in ("pip", "setuptools", "_distutils_hack") or re.match(r"(pip|setuptools)-.*\.dist-info$", top):
        return True
    if top == "numpy" and (rel[1:2] in (("f2py",), ("distutils",)) or rel[2:3] == ("tests",)):
        return True
    if top == "onnx" and (rel[1:2] == ("reference",) or rel[1:3] == ("backend", "test")):
        return True
    if top == "onnxruntime" and rel[1:2] in (("transformers",), ("quantization",), ("tools",)):
        return True  # model tooling (edge builds quantize on the building machine), not serving
    if top == "pydantic" and rel[1:2] == ("v1",):
        return True
    if path.endswith(SOURCES_FOR_COMPILERS):
        return True
    return (rel[:2] == ("pygments", "lexers") and len(rel) == 3 and rel[2].endswith(".py")
            and rel[2] not in ("__init__.py", "_mapping.py", "python.py", "special.py"))
