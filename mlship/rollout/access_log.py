"""The router's JSON access log (written by the nginx template): what users saw.

A dead or hanging candidate writes no prediction log, so the gate reads here the
requests nginx routed to the candidate's slot and answered itself with 502 (the
upstream refused or broke the connection) or 504 (it did not answer in time).
"""

from __future__ import annotations

import json
from pathlib import Path

UNANSWERED = frozenset({502, 504})


def unanswered(path: Path, slot: str, since: float, until: float) -> int | None:
    """How many requests routed to `slot` in [since, until) (epoch seconds) got a 502 or 504 from nginx;
    None when there is no access log. Lines that are not one JSON object (a line being written) are skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return None
    except OSError:
        return None  # unreadable: the gate judges on the prediction logs alone
    count = 0
    for line in lines:
        try:
            rec = json.loads(line)
            if rec.get("slot") == slot and rec.get("status") in UNANSWERED and since <= float(rec["ts"]) < until:
                count += 1
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            continue
    return count
