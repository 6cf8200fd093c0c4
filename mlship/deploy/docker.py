"""The docker runtime: one container per slot, `mlship-NAME-SLOT`, on a Docker engine.

Containers use the host's network (never Docker's bridge) and serve on the port of
their slot's upstream address, so nginx reaches them where `rollout.router.upstreams`
says. A replacement stops the slot's container (the port must be free), renames it
aside (`mlship-NAME-SLOT-<id>`, kept stopped for `rollout undo` until `deploy gc`)
and starts the new one; if the new one does not serve its version, its last log lines
are kept for the error, it is removed and the previous container comes back.
"""

from __future__ import annotations

import ipaddress
import re
from contextlib import closing
from typing import Any, Callable, Literal

from pydantic import Field, field_validator

from mlship.deploy import probe
from mlship.deploy.base import DeployError, Placement, Runtime
from mlship.deploy.engine import TlsSettings, connect, engine_address, first_line, get_image
from mlship.errors import MlshipError, ServiceError, UsageError

LABEL = "io.mlship.deploy."
STOP_TIMEOUT_S = 10


class DockerRuntime(Runtime):
    """Containers on a Docker engine (local, tcp:// with TLS, ssh://), one per slot, host network."""

    name = "docker"

    class Settings(Runtime.Settings):
        host: str | None = Field(None, description="The engine: unix:///var/run/docker.sock, tcp://HOST:2376 "
                                 "(with tls), ssh://USER@HOST [DOCKER_HOST].")
        tls: TlsSettings | None = Field(None, description="Client certificates for a tcp:// engine.")
        restart: Literal["no", "on-failure", "always", "unless-stopped"] = Field(
            "unless-stopped", description="The containers' restart policy.")
        cpus: float | None = Field(None, gt=0, description="CPU limit, e.g. 1.5.")
        memory: str | None = Field(None, description="Memory limit, e.g. 512m or 2g.")
        env: dict[str, str] = Field(default_factory=dict, description="Environment of the containers.")
        mounts: list[str] = Field(default_factory=list, description="Bind mounts or volumes, SOURCE:/TARGET[:ro].")
        bind: str | None = Field(None, description="Address the server binds to [the slot address's host when it "
                                 "is an IP address, else 0.0.0.0].")
        ready_timeout_s: float = Field(120, gt=0, description="How long a new container may take to serve its version.")
        log_lines: int = Field(20, ge=0, description="Last log lines shown when a container fails.")

        @field_validator("memory")
        @classmethod
        def _memory(cls, value: str | None) -> str | None:
            if value is not None and not re.fullmatch(r"\d+[bkmg]?", value.lower()):
                raise ValueError("expected a size such as 512m or 2g")
            return value

        @field_validator("mounts")
        @classmethod
        def _mounts(cls, mounts: list[str]) -> list[str]:
            for mount in mounts:
                parts = mount.split(":")
                if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/") \
                        or parts[2:] not in ([], ["ro"], ["rw"]):
                    raise ValueError(f"{mount!r}: expected SOURCE:/TARGET or SOURCE:/TARGET:ro")
            return mounts

    def __init__(self, *, name: str, slots: dict[str, str | None], router: dict[str, Any] | None = None,
                 **settings: Any) -> None:
        self.model, self.slots = name, dict(slots)
        self.settings = self.Settings.model_validate(settings)

    # -- the interface ---------------------------------------------------------

    def where(self) -> str:
        return engine_address(self.settings.host)

    def deploy(self, slot: str, version: str, images: list[str]) -> Placement:
        address = self._address(slot)
        with closing(self._connect()) as client:
            reference, image = get_image(client, images, self.where())
            current = self._container(client, self._name(slot))
            if current is not None and current.status == "running" and current.image.id == image.id \
                    and current.labels.get(LABEL + "version") == version:
                probe.wait_serving(address, self.model, version, self.settings.ready_timeout_s)
                return self._placement(current)  # already there: a repeated deploy changes nothing
            return self._swap(client, slot, current, lambda: self._run(client, image, reference, slot, version),
                              discard=lambda c: c.remove(force=True))

    def placements(self) -> list[Placement]:
        with closing(self._connect()) as client:
            return [self._placement(c) for c in self._containers(client)]

    def stop(self, slot: str) -> Placement | None:
        with closing(self._connect()) as client:
            container = self._container(client, self._name(slot))
            if container is None:
                return None
            self._call(lambda: container.stop(timeout=STOP_TIMEOUT_S), f"stopping {container.name}")
            container.reload()
            return self._placement(container)

    def restore(self, slot: str, version: str) -> Placement:
        address = self._address(slot)
        with closing(self._connect()) as client:
            kept = [c for c in self._containers(client) if self._kept_in(c, slot) and
                    c.labels.get(LABEL + "version") == version]
            current = self._container(client, self._name(slot))
            if not kept:
                if current is not None and current.labels.get(LABEL + "version") == version:
                    if current.status != "running":
                        self._call(current.start, f"starting {current.name}")
                    probe.wait_serving(address, self.model, version, self.settings.ready_timeout_s)
                    return self._placement(current)
                raise UsageError(f"no container of {self.model} {version} is kept for slot {slot} on {self.where()}",
                                 hint="Deploy it again: mlship deploy NAME:VERSION --slot SLOT")
            back, aside = kept[0], kept[0].name

            def start() -> Any:
                back.rename(self._name(slot))
                back.start()
                return back

            def put_aside(container: Any) -> None:
                container.stop(timeout=STOP_TIMEOUT_S)
                container.rename(aside)

            return self._swap(client, slot, current, start, discard=put_aside)

    def remove(self, placement: Placement) -> None:
        if placement.current:
            raise UsageError(f"{placement.id} is slot {placement.slot}'s own container; stop it instead")
        with closing(self._connect()) as client:
            container = self._container(client, placement.id)
            if container is not None:
                self._call(lambda: container.remove(force=True), f"removing {placement.id}")

    def prune(self, removed: list[Placement]) -> list[str]:
        """The images of the removed containers that no container on the engine uses (any, not only mlship's)."""
        import docker

        deleted: list[str] = []
        with closing(self._connect()) as client:
            used = {c.attrs.get("Image") for c in self._call(lambda: client.containers.list(all=True),
                                                              "listing containers")}
            for ref in dict.fromkeys(p.image for p in removed):
                try:
                    image = client.images.get(ref)
                except docker.errors.APIError:
                    continue  # removed already, or a reference the engine no longer resolves
                if image.id in used or image.id in deleted:
                    continue
                self._call(lambda: client.images.remove(image.id, force=True), f"removing image {ref}")
                deleted.append(image.id)
        return deleted

    # -- replacing a slot's container ------------------------------------------

    def _swap(self, client: Any, slot: str, current: Any, start: Callable[[], Any],
              discard: Callable[[Any], None]) -> Placement:
        """Put `current` aside, start the replacement, check it serves; put everything back when it does not."""
        was_running = current is not None and current.status == "running"
        if current is not None:
            self._call(lambda: (current.stop(timeout=STOP_TIMEOUT_S), current.rename(self._aside(current))),
                       f"stopping {current.name}")  # host network: the slot's port must be free
        new = None
        try:
            if probe.occupied(self._address(slot)):  # another server would answer the checks for the new one
                raise DeployError(f"something other than mlship's container answers at {self._address(slot)}")
            new = self._call(start, f"starting a container for slot {slot}")
            version = new.labels.get(LABEL + "version", "")
            probe.wait_serving(self._address(slot), self.model, version, self.settings.ready_timeout_s,
                               exited=lambda: _exit_reason(new))
        except MlshipError as exc:
            new = new or self._container(client, self._name(slot))  # created, then failed to start
            logs = self._logs(new)
            reason = exc.message if isinstance(exc, DeployError) else exc.one_line()
            if new is not None:
                self._call(lambda: discard(new), f"removing {new.name}")
            hint = "The slot is as it was"
            if current is not None:
                self._call(lambda: self._put_back(current, slot, was_running), f"restarting {current.name}")
                if was_running:  # as it was: serving again before this command ends
                    try:
                        probe.wait_serving(self._address(slot), self.model, current.labels.get(LABEL + "version", ""),
                                           self.settings.ready_timeout_s, exited=lambda: _exit_reason(current))
                    except MlshipError as back:
                        hint = f"The previous container was restarted but does not serve: {back.one_line()}"
            raise DeployError(f"slot {slot} of {self.model} on {self.where()}: {reason}",
                              hint=hint, logs=logs) from None
        new.reload()
        return self._placement(new)

    def _put_back(self, container: Any, slot: str, was_running: bool) -> None:
        container.rename(self._name(slot))
        if was_running:
            container.start()

    def _run(self, client: Any, image: Any, reference: str, slot: str, version: str) -> Any:
        host, port = _split_address(self._address(slot))
        env = {**self.settings.env, "MLSHIP_SERVE_HOST": self.settings.bind or _bind_host(host),
               "MLSHIP_SERVE_PORT": str(port)}
        labels = {LABEL + "name": self.model, LABEL + "version": version, LABEL + "slot": slot,
                  LABEL + "image": reference}
        restart = {"Name": self.settings.restart, **({"MaximumRetryCount": 5} if self.settings.restart == "on-failure"
                                                     else {})}
        limits: dict[str, Any] = {}
        if self.settings.cpus:
            limits["nano_cpus"] = int(self.settings.cpus * 1e9)
        if self.settings.memory:
            limits["mem_limit"] = self.settings.memory
        return client.containers.run(image.id, name=self._name(slot), detach=True, network_mode="host",
                                     environment=env, labels=labels, restart_policy=restart,
                                     volumes=list(self.settings.mounts), **limits)

    # -- plumbing --------------------------------------------------------------

    def _connect(self) -> Any:
        return connect(self.settings.host, self.settings.tls)

    def _address(self, slot: str) -> str:
        if slot not in self.slots:
            raise UsageError(f"slot '{slot}' is not in rollout.router.upstreams ({', '.join(self.slots) or 'none'})")
        address = self.slots[slot]
        if not address:
            raise UsageError(f"slot '{slot}' has no address in rollout.router.upstreams",
                             hint="The docker runtime serves each slot on its upstream's port")
        return address

    def _name(self, slot: str) -> str:
        return f"mlship-{self.model}-{slot}"

    @staticmethod
    def _aside(container: Any) -> str:
        return f"{container.name}-{container.id[:12]}"

    def _kept_in(self, container: Any, slot: str) -> bool:
        return container.labels.get(LABEL + "slot") == slot and container.name != self._name(slot)

    def _containers(self, client: Any) -> list[Any]:
        found = self._call(lambda: client.containers.list(all=True, filters={"label": f"{LABEL}name={self.model}"}),
                           "listing containers")
        return sorted(found, key=lambda c: c.attrs.get("Created", ""), reverse=True)

    def _container(self, client: Any, name: str) -> Any:
        return next((c for c in self._containers(client) if c.name == name), None)

    def _placement(self, container: Any) -> Placement:
        slot = container.labels.get(LABEL + "slot", "")
        current = container.name == self._name(slot)
        image = container.labels.get(LABEL + "image") or container.attrs["Config"]["Image"]
        return Placement(slot=slot, version=container.labels.get(LABEL + "version", ""), image=image,
                         digest=image.partition("@")[2] or container.attrs.get("Image"),
                         state=container.status, current=current, id=container.name,
                         created=container.attrs.get("Created", "")[:19] + "Z",
                         address=self.slots.get(slot) if current else None)

    def _logs(self, container: Any) -> list[str]:
        if container is None or not self.settings.log_lines:
            return []
        try:
            text = container.logs(tail=self.settings.log_lines).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the logs only explain a failure already being reported
            return []
        return text.splitlines()[-self.settings.log_lines:]

    def _call(self, action: Callable[[], Any], doing: str) -> Any:
        """Run one engine call; its failure is a ServiceError naming what was being done."""
        try:
            return action()
        except MlshipError:
            raise
        except Exception as exc:  # docker.errors.APIError, connection errors
            raise ServiceError(f"{doing} on {self.where()}: {first_line(exc)}") from None


def _exit_reason(container: Any) -> str | None:
    """Why the container is not running any more (or restarts), None while it runs."""
    container.reload()
    state = container.attrs.get("State", {})
    if container.status in ("exited", "dead"):
        return f"exit code {state.get('ExitCode')}"
    if state.get("Restarting") or container.attrs.get("RestartCount"):  # the exit code is gone by now
        return f"it exited and its restart policy restarts it ({container.attrs.get('RestartCount', 0)} restarts)"
    return None


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"rollout.router.upstreams: '{address}' is not HOST:PORT")
    return host.strip("[]"), int(port)


def _bind_host(host: str) -> str:
    """The slot's IP address (a loopback slot stays on loopback), or every address for a host name."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return "0.0.0.0"
