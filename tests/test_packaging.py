"""The wheel carries templates/ and works when installed (not only from a checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from tests.support import MODEL, ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("mlship-*.whl")
    return path


def test_wheel_contains_templates_and_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlship/templates/mlship.yaml" in names
    assert "mlship/templates/nginx/rollout.conf" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mlship = mlship.cli:run" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_runs_init_from_its_own_templates(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True, timeout=300)
    work = tmp_path / "project"
    work.mkdir()
    # Only the installed copy is importable: no checkout on the path, cwd elsewhere.
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import mlship, mlship.templates as t; print(mlship.__file__); print(t.templates_dir())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work, env=env)
    module_file, templates = proc.stdout.split()
    assert module_file.startswith(str(target)) and templates.startswith(str(target))
    proc = subprocess.run([sys.executable, "-m", "mlship", "init", "--model", str(MODEL)],
                          capture_output=True, text=True, cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "input  X: tensor(float) [?, 30]" in (work / "mlship.yaml").read_text()
