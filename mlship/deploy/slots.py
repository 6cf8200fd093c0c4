"""What rollout verbs ask of the slots: place the candidate, or check what it serves; bring a version back.

With `deploy.runtime` set, `rollout start` deploys the candidate into its slot before
any traffic moves. Without it, the candidate slot is asked what it serves
(`/v2/models/NAME` at its upstream address) and a slot serving another version is
refused, so traffic never moves to a slot that runs something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlship.errors import UsageError

if TYPE_CHECKING:
    from mlship.config import Config


@dataclass
class RolloutSlots:
    """The slots of rollout `name` as mlship.yaml describes them (its runtime and the router's addresses)."""

    cfg: "Config"
    name: str

    @property
    def deploys(self) -> bool:
        """Whether placing a version deploys it (a runtime is configured) or only asks the slot."""
        return bool(self.cfg.deploy.runtime)

    def place(self, slot: str, version: str, router: Any) -> str:
        """Make `slot` serve `version`: deploy it with the runtime, or ask `router` (its `serves`)
        what the slot serves.

        UsageError (exit 2) naming what the slot serves when it serves another version and no
        runtime is configured; DeployError (exit 7) when a deploy fails. Returns what was done, for messages.
        """
        from mlship.deploy.service import DeployRequest, deploy_version

        if self.cfg.deploy.runtime:
            result = deploy_version(self.cfg, DeployRequest(name=self.name, version=version, slot=slot),
                                    via="rollout start")
            return f"deployed {version} to {slot} on {result.where}"
        answer = router.serves(slot)
        # Refused: a slot that answers with another version. A slot that does not answer (not started
        # yet, a router without addresses) is left to the gate, which counts its failed requests.
        where, served = answer if answer is not None else ("", [version])
        if version not in served:
            raise UsageError(f"slot {slot} ({where}) serves {', '.join(served) or 'no version'} of {self.name}, "
                             f"not the candidate {version}",
                             hint=f"Run {version} there first (mlship deploy {self.name}:{version} --slot {slot}, "
                                  "or set deploy.runtime and `rollout start` deploys it)")
        return ""

    def bring_back(self, slot: str, version: str) -> None:
        """Have `slot` serve `version` again (its stopped or kept container), when a runtime is configured."""
        if self.cfg.deploy.runtime:
            from mlship.deploy.service import restore_version

            restore_version(self.cfg, self.name, slot, version, via="rollout undo")
