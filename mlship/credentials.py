"""Where credentials come from, for `mlship doctor`: the source only, never a value.

Each finder names an environment variable, a file or a provider chain step that
holds credentials for one kind of service, without reading out what it holds.
Nothing here reaches the network: boto3's chain is asked without its instance
and container metadata steps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from mlship.config import Config

# boto3's provider names, as people know them
_BOTO_SOURCES = {
    "env": "environment (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "shared credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE)",
    "config-file": "config file (~/.aws/config)",
    "sso": "AWS SSO (the config file)",
    "assume-role": "assume-role profile (the config file)",
    "assume-role-with-web-identity": "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "custom-process": "credential_process (the config file)",
}
_AZURE_VARIABLES = {
    "AZURE_STORAGE_CONNECTION_STRING": "connection string (AZURE_STORAGE_CONNECTION_STRING)",
    "AZURE_STORAGE_KEY": "account key (AZURE_STORAGE_KEY)",
    "AZURE_STORAGE_SAS_TOKEN": "SAS token (AZURE_STORAGE_SAS_TOKEN)",
    "AZURE_CLIENT_SECRET": "service principal (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)",
}


def credential_sources(cfg: Config) -> dict[str, str | None]:
    """Kind of credentials (boto3, docker config, google, azure) -> where they were found, or None."""
    finders: dict[str, Callable[[Config], str | None]] = {
        "boto3": _boto3, "docker config": _docker_config, "google": _google, "azure": _azure}
    return {name: find(cfg) for name, find in finders.items()}


def _boto3(cfg: Config) -> str | None:
    from importlib.util import find_spec

    if find_spec("botocore") is None:
        return None
    import botocore.session

    session = botocore.session.Session(profile=_aws_profile(cfg))
    resolver = session.get_component("credential_provider")
    for remote in ("container-role", "iam-role"):  # these would ask a metadata service
        resolver.remove(remote)
    try:
        found = resolver.load_credentials()
    except Exception as exc:  # a broken profile: say which, not the values
        return f"unusable: {type(exc).__name__}"
    return None if found is None else _BOTO_SOURCES.get(found.method, found.method)


def _aws_profile(cfg: Config) -> str | None:
    """The first profile a target names (the one S3 targets will use), else AWS_PROFILE's."""
    profiles = [getattr(t, "profile", None) for t in cfg.targets.values()]
    return next((p for p in profiles if p), None)


def _docker_config(cfg: Config) -> str | None:
    import json

    path = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    helpers = [f"credsStore {document['credsStore']}"] if document.get("credsStore") else []
    hosts = sorted(document.get("auths") or {})
    shown = ", ".join(helpers + ([f"auths for {', '.join(hosts)}"] if hosts else []))
    return f"{_home(path)}" + (f" ({shown})" if shown else "")


def _google(cfg: Config) -> str | None:
    files = [f"targets.{n}.credentials_file" for n, t in cfg.targets.items() if getattr(t, "credentials_file", None)]
    if files:
        return files[0]
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return "GOOGLE_APPLICATION_CREDENTIALS"
    adc = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
    return f"gcloud application-default ({_home(adc)})" if adc.is_file() else None


def _azure(cfg: Config) -> str | None:
    return next((what for name, what in _AZURE_VARIABLES.items() if os.environ.get(name)), None)


def _home(path: Path) -> str:
    """`path` with the home directory written ~ (what people type)."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text.startswith(home + os.sep) else text
