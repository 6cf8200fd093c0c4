"""The nginx router: a config file mlship owns, rendered from templates/nginx/rollout.conf.

Weighted `split_clients` on a stable client id for canaries, the whole split on
one upstream for blue-green, `mirror` with short timeouts for shadows. Every
change is checked with `nginx -t` before `nginx -s reload`; a refused config is
taken back and the running one keeps serving. After a reload the live route is
read back from the `/.mlship/route` location until the new generation answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path
from string import Template
from typing import Any

from pydantic import Field

from mlship.errors import RouterRefusedError, ServiceError, UsageError
from mlship.rollout.routers import Router, check_slots, two_slots
from mlship.rollout.state import Route

VERIFY_TIMEOUT_S = 15.0
VERIFY_STREAK = 3  # consecutive answers from the new generation


class _NginxTemplate(Template):
    delimiter = "@"  # nginx variables use $


class NginxRouter(Router):
    """Weights and mirroring through an nginx config file on-prem."""

    name = "nginx"
    supports = frozenset({"bluegreen", "canary", "shadow"})

    class Settings(Router.Settings):
        config: str = Field(..., description="The nginx config file mlship owns, e.g. /etc/nginx/conf.d/model.conf.")
        upstreams: dict[str, str] = Field(..., description="Two slots: name -> server address, e.g. "
                                          "{blue: 127.0.0.1:8001, green: 127.0.0.1:8002}.")
        listen: str = Field("127.0.0.1:8080", description="Address the rendered server block listens on.")
        client_header: str = Field("X-Client-ID", description="Header that keeps a client on one slot (else its address).")
        nginx: str = Field("nginx", description="The nginx binary, for `nginx -t` and `nginx -s reload`.")
        main_config: str | None = Field(None, description="nginx's main config (-c), when not the default.")
        prefix: str | None = Field(None, description="nginx's prefix (-p), when not the default.")
        reload: str | None = Field(None, description="Command that reloads nginx; `nginx -s reload` when empty.")
        template: str | None = Field(None, description="Your own template instead of templates/nginx/rollout.conf.")
        mirror_timeout_ms: int = Field(1000, gt=0, description="Timeout of mirrored (shadow) requests.")
        status_url: str | None = Field(None, description="Where mlship reads the live route [http://LISTEN/.mlship/route].")
        access_log: str | None = Field(None, description="The JSON access log nginx writes (slot, status, upstream "
                                       "status, request time, request id), read by the gate [CONFIG.access.jsonl].")

    def __init__(self, *, name: str, config: str, upstreams: dict[str, str], listen: str = "127.0.0.1:8080",
                 client_header: str = "X-Client-ID", nginx: str = "nginx", main_config: str | None = None,
                 prefix: str | None = None, reload: str | None = None, template: str | None = None,
                 mirror_timeout_ms: int = 1000, status_url: str | None = None, access_log: str | None = None,
                 **_: Any) -> None:
        for slot in two_slots(upstreams):
            if not re.fullmatch(r"[A-Za-z0-9_]+", slot):
                raise UsageError(f"rollout.router.upstreams: slot name '{slot}' must be letters, digits or _")
        self.model = name
        self.id = re.sub(r"[^A-Za-z0-9_]", "_", name)
        self.config = Path(config)
        self.upstreams = dict(upstreams)
        self.listen = listen
        self.client_header = client_header.lower().replace("-", "_")
        self.nginx, self.main_config, self.prefix = nginx, main_config, prefix
        self.reload_command = reload
        self.template = Path(template) if template else None
        self.mirror_timeout_ms = mirror_timeout_ms
        self.access_log = Path(access_log) if access_log else self.config.with_suffix(".access.jsonl")
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") if host not in ("", "*", "0.0.0.0", "[::]") else "127.0.0.1"
        self.status_url = status_url or f"http://{'[' + host + ']' if ':' in host else host}:{port}/.mlship/route"

    # -- the interface ---------------------------------------------------------

    def slots(self) -> list[str]:
        return list(self.upstreams)

    def live(self) -> Route | None:
        if not self.config.is_file():
            return None
        doc = self._read_route()
        if doc is None:
            raise ServiceError(f"nginx does not answer {self.status_url} with mlship's route",
                               hint=f"Is nginx running and including {self.config}?")
        return Route.model_validate({k: doc[k] for k in ("stable", "candidate", "weight", "mirror")})

    def apply(self, route: Route) -> None:
        check_slots(route, self.slots(), "rollout.router.upstreams")
        text, generation = self.render(route)
        old = self.config.read_bytes() if self.config.exists() else None
        if old == text.encode() and (self._read_route() or {}).get("generation") == generation:
            return  # written and live already
        if old != text.encode():
            self._write(text.encode())
        check = self._run([*self._base(), "-t", "-q"])
        if check.returncode != 0:
            self._restore(old)
            raise RouterRefusedError(f"nginx -t refused the rendered config {self.config}: {_first_error(check.stderr)}",
                               hint="The previous config is back in place and still serving")
        reload = shlex.split(self.reload_command) if self.reload_command else [*self._base(), "-s", "reload"]
        done = self._run(reload)
        if done.returncode != 0:
            self._restore(old)
            raise RouterRefusedError(f"nginx reload failed: {_first_error(done.stderr)}",
                               hint="The previous config is back in place")
        self._verify(generation)

    def unanswered(self, slot: str, since: float, until: float) -> int | None:
        from mlship.rollout.access_log import unanswered

        return unanswered(self.access_log, slot, since, until)

    # -- rendering -----------------------------------------------------------

    def render(self, route: Route) -> tuple[str, str]:
        text = self.template.read_text() if self.template else _template_text()
        slot_var = f"$mlship_{self.id}_slot"
        client_var = f"$mlship_{self.id}_client"
        candidate = route.candidate
        weight = route.weight if candidate else 0
        if 0 < weight < 100:
            split = (f'split_clients "{client_var}" {slot_var} {{\n    {_percent(weight)}% {candidate};\n'
                     f"    * {route.stable};\n}}")
        else:
            target = candidate if weight >= 100 and candidate else route.stable
            split = f"map $request_method {slot_var} {{\n    default {target};\n}}"
        upstreams = "\n".join(f"upstream mlship_{self.id}_{slot} {{\n    server {addr} max_fails=0;\n    keepalive 16;\n}}"
                              for slot, addr in self.upstreams.items())
        mirror = mirror_location = ""
        if route.mirror and candidate:
            t = self.mirror_timeout_ms
            mirror = "        mirror /.mlship/mirror;\n        mirror_request_body on;"
            mirror_location = (
                "    # Shadow: the candidate gets a copy of each request; its answer is dropped.\n"
                "    location = /.mlship/mirror {\n        internal;\n"
                "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
                f"        proxy_set_header X-Request-ID $mlship_{self.id}_rid;\n"
                "        proxy_set_header X-Mlship-Mirror \"1\";\n"
                f"        proxy_connect_timeout {min(t, 500)}ms;\n        proxy_send_timeout {t}ms;\n"
                f"        proxy_read_timeout {t}ms;\n"
                f"        proxy_pass http://mlship_{self.id}_{candidate}$request_uri;\n    }}")
        route_doc = {"name": self.model, **route.model_dump()}
        generation = hashlib.sha256(json.dumps([text, route_doc, self.upstreams, self.listen], sort_keys=True)
                                    .encode()).hexdigest()[:16]
        route_doc["generation"] = generation
        values = {"name": self.model, "id": self.id, "describe": route.describe(), "generation": generation,
                  "upstreams": upstreams, "client_header": self.client_header, "split": split, "listen": self.listen,
                  "route_json": json.dumps(route_doc, sort_keys=True), "mirror": mirror,
                  "access_log": json.dumps(str(self.access_log)),
                  "mirror_location": mirror_location}
        try:
            return _NginxTemplate(text).substitute(values), generation
        except (KeyError, ValueError) as exc:
            raise UsageError(f"nginx template {self.template or 'templates/nginx/rollout.conf'}: bad placeholder {exc}",
                             hint="Placeholders start with @; write @@ for a literal @") from None

    # -- plumbing --------------------------------------------------------------

    def _base(self) -> list[str]:
        cmd = [self.nginx]
        if self.prefix:
            cmd += ["-p", self.prefix]
        if self.main_config:
            cmd += ["-c", self.main_config]
        return cmd

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"cannot run {cmd[0]}: {exc}", hint="Install nginx or set rollout.router.nginx") from None

    def _write(self, data: bytes) -> None:
        from mlship.fsutil import atomic_write

        try:
            atomic_write(self.config, data)
        except OSError as exc:
            raise ServiceError(f"cannot write the nginx config {self.config}: {exc.strerror}") from None

    def _restore(self, old: bytes | None) -> None:
        if old is None:
            self.config.unlink(missing_ok=True)
        else:
            self._write(old)

    def _read_route(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(urllib.request.Request(self.status_url, headers={"Connection": "close"}),
                                        timeout=2) as reply:
                doc = json.loads(reply.read())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and doc.get("name") == self.model else None

    def _verify(self, generation: str) -> None:
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        streak = 0
        while streak < VERIFY_STREAK:
            doc = self._read_route()
            streak = streak + 1 if doc and doc.get("generation") == generation else 0
            if streak < VERIFY_STREAK:
                if time.monotonic() > deadline:
                    raise ServiceError(f"nginx did not serve the new config within {VERIFY_TIMEOUT_S:.0f} s "
                                       f"({self.status_url})", hint="Check nginx's error log")
                time.sleep(0.05)


def _percent(weight: float) -> str:
    """split_clients takes at most two decimals."""
    return f"{weight:.2f}".rstrip("0").rstrip(".")


def _template_text() -> str:
    from mlship.templates import template_text

    return template_text("nginx/rollout.conf")


def _first_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if "[emerg]" in line or "[error]" in line]
    text = (lines or stderr.strip().splitlines() or ["no output"])[0]
    return re.sub(r"^nginx: \[(emerg|error)\] ", "", text)[:300]
