"""Who runs mlship, for audit records (rollout history, deploy events in the versions store)."""

from __future__ import annotations

import getpass
import os
import socket


def current_user() -> str:
    """CI's user (MLSHIP_USER, GitLab's, GitHub's) when set, else USER@HOST."""
    for key in ("MLSHIP_USER", "GITLAB_USER_LOGIN", "GITHUB_ACTOR"):
        if os.environ.get(key):
            return os.environ[key]
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
