"""The file router: the route as a JSON file, for client-side routing and for `mlship demo`.

Clients (a gateway you own, a service mesh hook, mlship's demo traffic) read
`path` and split requests themselves: {"stable", "candidate", "weight",
"mirror", "upstreams", "generation"}. No server to reload; applying is an
atomic rename, so readers see the old route or the new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from mlship.errors import InvalidInputError, RouterRefusedError
from mlship.rollout.routers import Router, check_slots, two_slots
from mlship.rollout.state import Route


class FileRouter(Router):
    """The route as a JSON file that clients read (client-side routing, `mlship demo`)."""

    name = "file"
    supports = frozenset({"bluegreen", "canary", "shadow"})

    class Settings(Router.Settings):
        path: str = Field(..., description="The route file mlship writes.")
        upstreams: dict[str, str] = Field(..., description="Two slots: name -> URL.")

    def __init__(self, *, name: str, path: str, upstreams: dict[str, str], **_: Any) -> None:
        self.model, self.path, self.upstreams = name, Path(path), two_slots(upstreams)

    def slots(self) -> list[str]:
        return list(self.upstreams)

    def live(self) -> Route | None:
        if not self.path.is_file():
            return None
        try:
            doc = json.loads(self.path.read_text())
            return Route.model_validate({k: doc[k] for k in ("stable", "candidate", "weight", "mirror")})
        except (ValueError, KeyError) as exc:
            raise InvalidInputError(f"{self.path}: not a route file ({exc})") from None

    def apply(self, route: Route) -> None:
        from mlship.fsutil import atomic_write

        check_slots(route, self.slots(), "rollout.router.upstreams")
        doc = {"name": self.model, **route.model_dump(), "upstreams": self.upstreams}
        doc["generation"] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
        try:
            atomic_write(self.path, json.dumps(doc, indent=2).encode() + b"\n")
        except OSError as exc:
            raise RouterRefusedError(f"cannot write the route file {self.path}: {exc.strerror}") from None


def pick_slot(route: dict[str, Any], client_id: str) -> str:
    """The slot a client's request goes to: the same hash rule as nginx's split_clients
    in spirit (a stable client stays on one slot as the weight grows)."""
    weight = float(route.get("weight") or 0)
    if not route.get("candidate") or weight <= 0:
        return route["stable"]
    if weight >= 100:
        return route["candidate"]
    bucket = int.from_bytes(hashlib.sha256(client_id.encode()).digest()[:4], "big") / 2**32 * 100
    return route["candidate"] if bucket < weight else route["stable"]
