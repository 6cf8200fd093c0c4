"""A third-party package, made at test time, adds a target scheme and a router through the
entry points alone; mlship.yaml configures them, and push/pull, rollout and the schema use them."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.support import run_process

PLUGIN = '''
"""acme_mlship: a target that shelves artifacts in a directory, a router that writes a JSON file."""
import hashlib, json, shutil, time
from pathlib import Path

from pydantic import Field

from mlship.rollout.routers import Router, check_slots
from mlship.rollout.state import Route
from mlship.targets.base import Target


class ShelfTarget(Target):
    """Artifacts on a shelf (a directory)."""

    name = "shelf"

    class Settings(Target.Settings):
        root: str = Field(..., description="The shelf's directory.")
        meet: str | None = Field(None, description="Uploads wait here until another shelf's upload is running.")

    def __init__(self, url, *, root, meet=None):
        super().__init__(url)
        self.root, self.meet = Path(root), meet

    def _path(self, key):
        path = self.root / self.check_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def upload(self, key, path, progress):
        if self.meet:  # a rendezvous: only uploads running at the same time both get past it
            Path(self.meet, self.root.name).touch()
            deadline = time.monotonic() + 60
            while len(list(Path(self.meet).iterdir())) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError("no other upload ran beside this one")
                time.sleep(0.05)
        shutil.copyfile(path, self._path(key))
        progress(path.stat().st_size)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def download(self, key, dest, progress):
        shutil.copyfile(self._path(key), dest)

    def read(self, key):
        path = self._path(key)
        return path.read_bytes() if path.exists() else None

    def write(self, key, data):
        self._path(key).write_bytes(data)


class SignpostRouter(Router):
    """The route as a signpost file."""

    name = "signpost"
    supports = frozenset({"bluegreen", "canary"})

    class Settings(Router.Settings):
        post: str = Field(..., description="The signpost file.")
        slots_: dict[str, str] = Field(..., alias="slots", description="Two slots.")

    def __init__(self, *, name, post, slots_):
        self.post, self._slots = Path(post), slots_

    def slots(self):
        return list(self._slots)

    def live(self):
        return Route.model_validate_json(self.post.read_text()) if self.post.exists() else None

    def apply(self, route):
        check_slots(route, self.slots(), "rollout.router.slots")
        self.post.write_text(route.model_dump_json())
'''


@pytest.fixture
def site(tmp_path) -> Path:
    """A directory holding the package and its installed metadata, as pip would leave them."""
    site = tmp_path / "site"
    info = site / "acme_mlship-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "acme_mlship.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-mlship\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [mlship.targets.v1]
        shelf = acme_mlship:ShelfTarget

        [mlship.routers.v1]
        signpost = acme_mlship:SignpostRouter
        """))
    return site


@pytest.fixture
def project(tmp_path) -> Path:
    project = tmp_path / "project"
    (project / "logs").mkdir(parents=True)
    (project / "mlship.yaml").write_text(textwrap.dedent(f"""\
        name: bc
        version: 1.0.0
        targets:
          attic: {{type: shelf, url: shelf://attic, root: {tmp_path / 'attic'}}}
        rollout:
          router: {{type: signpost, post: {tmp_path / 'post.json'}, slots: {{blue: "h:1", green: "h:2"}}}}
          steps: [50, 100]
          logs: [logs]
          analysis: {{min_requests: 0}}
        """))
    return project


def mlship(site: Path, project: Path, *args: str):
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return run_process(*args, cwd=project, env={"PYTHONPATH": path})


def test_a_third_party_target_takes_push_and_pull(site, project, tmp_path):
    (project / "model.bin").write_bytes(b"weights" * 100)
    pushed = mlship(site, project, "--json", "push", "model.bin", "--to", "attic")
    assert pushed.code == 0, pushed.stderr
    assert (tmp_path / "attic" / "bc" / "1.0.0" / "model.bin").read_bytes() == b"weights" * 100
    pulled = mlship(site, project, "pull", "bc:1.0.0", "--from", "attic", "-o", str(tmp_path / "back"))
    assert pulled.code == 0, pulled.stderr
    assert (tmp_path / "back" / "model.bin").read_bytes() == b"weights" * 100
    listed = mlship(site, project, "--json", "targets", "list")
    assert "shelf" in json.loads(listed.stdout)["schemes"]


def test_a_hybrid_push_uploads_to_every_target_at_once(site, project, tmp_path):
    (meet := tmp_path / "meet").mkdir()
    config = project / "mlship.yaml"
    config.write_text(config.read_text().replace("targets:\n", "targets:\n" + "".join(
        f"  {shelf}: {{type: shelf, url: shelf://{shelf}, root: {tmp_path / shelf}, meet: {meet}}}\n"
        for shelf in ("left", "right"))))
    (project / "model.bin").write_bytes(b"weights" * 100)
    pushed = mlship(site, project, "--json", "push", "model.bin", "--to", "left", "--to", "right")
    assert pushed.code == 0, pushed.stderr  # one after the other, the first upload would wait in vain
    assert [r["target"] for r in json.loads(pushed.stdout)["results"]] == ["shelf://left", "shelf://right"]
    assert all((tmp_path / shelf / "bc" / "1.0.0" / "model.bin").read_bytes() == b"weights" * 100
               for shelf in ("left", "right"))


def test_a_third_party_router_carries_a_rollout(site, project, tmp_path):
    started = mlship(site, project, "--json", "rollout", "start", "bc", "--candidate", "2", "--stable", "1")
    assert started.code == 0, started.stderr
    post = json.loads((tmp_path / "post.json").read_text())
    assert post["candidate"] == "green" and post["weight"] == 50
    stepped = mlship(site, project, "--json", "rollout", "step", "bc")
    assert stepped.code == 0, stepped.stderr
    assert json.loads((tmp_path / "post.json").read_text())["weight"] == 100


def test_the_schema_holds_the_plugins_settings(site, project):
    schema = json.loads(mlship(site, project, "config", "schema").stdout)
    assert schema["$defs"]["ShelfTarget"]["properties"]["root"]["description"] == "The shelf's directory."
    assert schema["$defs"]["SignpostRouter"]["properties"]["type"]["const"] == "signpost"
    assert "shelf" in schema["properties"]["targets"]["additionalProperties"]["discriminator"]["mapping"]


def test_the_plugins_settings_validate_the_config(site, project):
    config = project / "mlship.yaml"
    config.write_text(config.read_text().replace("root:", "colour: red, root:"))
    result = mlship(site, project, "push", "mlship.yaml", "--to", "attic")
    assert result.code == 2
    assert "mlship.yaml: targets.attic.colour: unknown key" in result.stderr
    # Without the package, its type is unknown and the installed ones are named.
    alone = run_process("push", "mlship.yaml", "--to", "attic", cwd=project)
    assert alone.code == 2 and "targets.attic.type: unknown target type; installed: az, file, gs, registry, s3" in alone.stderr
