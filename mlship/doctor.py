"""The `doctor` use case: what is installed, what mlship.yaml configures and whether it answers.

Each probe is short (at most `TIMEOUT_S`) and they run side by side. A configured
service that does not answer is a `fail` (the command exits 7); something merely
missing or unconfigured is a `warn`. Credentials are reported by their source
(an environment variable, a file) only: no probe puts a credential's value in a detail.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from mlship.credentials import credential_sources
from mlship.urls import redact

if TYPE_CHECKING:
    from mlship.config import Config

TIMEOUT_S = 3.0
Status = Literal["ok", "warn", "fail"]
# module whose presence shows an extra is installed, when the extra's top-level name is a namespace
_PROBE_MODULE = {"google": "google.cloud.storage", "azure": "azure.storage.blob"}


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: `group` (installed, targets, …), what was checked, and how it went."""

    group: str
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class DoctorReport:
    """Every check, in the order of the report."""

    checks: list[Check]

    @property
    def unreachable(self) -> list[Check]:
        """The configured services that did not answer."""
        return [c for c in self.checks if c.status == "fail"]

    def as_dict(self) -> dict:
        return {"checks": [asdict(c) for c in self.checks], "unreachable": [c.name for c in self.unreachable]}


@dataclass(frozen=True)
class Probe:
    """A check that may wait on the network: `run` returns its detail, or raises to fail it."""

    group: str
    name: str
    configured: bool  # a configured service that fails is `fail`; an unconfigured one only `warn`
    run: Callable[[], str]


def run_doctor(cfg: Config) -> DoctorReport:
    """Check the installation, the services `cfg` names, and the credentials found."""
    checks = installed_checks()
    checks += run_probes(service_probes(cfg))
    checks += [Check("credentials", kind, "ok" if source else "warn", source or "none found")
               for kind, source in credential_sources(cfg).items()]
    return DoctorReport(checks)


def installed_checks() -> list[Check]:
    """mlship's optional packages (found, not imported) and onnxruntime's execution providers."""
    from importlib.util import find_spec

    from mlship.extras import EXTRAS

    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    checks = []
    for module, (purpose, extra) in EXTRAS.items():
        try:
            found = find_spec(_PROBE_MODULE.get(module, module)) is not None
        except (ImportError, ValueError):
            found = False
        detail = f"{_version(distributions, module)}{purpose}" if found else \
            f"not installed ({purpose}): pip install 'mlship[{extra}]'"
        checks.append(Check("installed", module, "ok" if found else "warn", detail))
    return checks + [_onnxruntime()]


def _version(distributions: dict[str, list[str]], module: str) -> str:
    """"1.35.0: " for the distribution that installs `module` (the first one for a namespace), else ""."""
    from importlib.metadata import PackageNotFoundError, version

    names = distributions.get(_PROBE_MODULE.get(module, module).split(".")[0], [])
    preferred = [n for n in names if _PROBE_MODULE.get(module, module).split(".")[-1] in n.lower()] or names
    try:
        return f"{preferred[0]} {version(preferred[0])}: " if preferred else ""
    except PackageNotFoundError:
        return ""


def _onnxruntime() -> Check:
    try:
        import onnxruntime
    except ImportError as exc:
        return Check("installed", "onnxruntime", "fail", f"cannot import: {exc}")
    providers = ", ".join(onnxruntime.get_available_providers())
    return Check("installed", "onnxruntime", "ok", f"{onnxruntime.__version__}; providers: {providers}")


def run_probes(probes: list[Probe], timeout: float = TIMEOUT_S) -> list[Check]:
    """Run `probes` side by side; one that has not answered within `timeout` fails (or warns)."""
    results: list[Check | None] = [None] * len(probes)

    def run(i: int, probe: Probe) -> None:
        try:
            results[i] = Check(probe.group, probe.name, "ok", probe.run())
        except Exception as exc:  # any failure of a probe is its finding, not doctor's crash
            results[i] = Check(probe.group, probe.name, "fail" if probe.configured else "warn", _one_line(exc))

    # Daemon threads: a probe stuck in a connect must not hold the process open after the report.
    threads = [threading.Thread(target=run, args=(i, p), daemon=True) for i, p in enumerate(probes)]
    for thread in threads:
        thread.start()
    deadline = _now() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - _now()))
    found = [r or Check(p.group, p.name, "fail" if p.configured else "warn", f"no answer within {timeout:g} s")
             for p, r in zip(probes, list(results))]
    # Names and details quote configured URLs and clients' messages: no credential they carry is shown.
    return [Check(c.group, redact(c.name), c.status, redact(c.detail)) for c in found]


def service_probes(cfg: Config) -> list[Probe]:
    """A probe for each target, registry, router, runtime and Prometheus server `cfg` names, plus the
    nginx and Docker versions (warnings only, when nothing configures them)."""
    probes = [_target_probe(cfg, name) for name in cfg.targets]
    probes += [Probe("registries", host, True, lambda h=host, i=insecure: _registry(h, i))
               for host, insecure in _registries(cfg).items()]
    router = cfg.rollout.router
    if router is not None:
        probes += _router_probes(router)
    if not any(p.name == "nginx" for p in probes):
        probes.append(Probe("versions", "nginx", False, lambda: _nginx_version("nginx")))
    probes.append(_docker_probe(cfg))
    prometheus = cfg.rollout.analysis.prometheus
    if prometheus is not None:
        probes.append(Probe("prometheus", prometheus.url, True, lambda: _prometheus(prometheus.url)))
    return probes


def _target_probe(cfg: Config, name: str) -> Probe:
    section = cfg.targets[name]
    label = f"{name} ({section.type} {getattr(section, 'url', '')})"
    if section.type == "registry":
        return Probe("targets", label, True, lambda: _registry(_host(section.url), section.insecure))

    def run() -> str:
        from mlship.targets.base import open_target

        # Reading the index (present or not) needs the store to answer and the credentials to be accepted.
        target = open_target(name, cfg.targets)
        target.read(f"{cfg.name}/index.json" if cfg.name else "index.json")
        return "reachable"

    return Probe("targets", label, True, run)


def _registries(cfg: Config) -> dict[str, bool]:
    """Registry host -> plain HTTP, for the image repository (registry targets are probed as targets)."""
    from mlship.registry.client import is_insecure

    repository = cfg.build.image.repository
    if not repository or "/" not in repository or not any(c in repository.split("/")[0] for c in ".:"):
        return {}  # Docker Hub (docker.io/library/…): not reachable from here, not probed
    host = _host(repository)
    return {host: is_insecure(host)}


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _registry(host: str, insecure: bool) -> str:
    status = _http_status(f"{'http' if insecure else 'https'}://{host}/v2/")
    if status in (200, 401):  # 401: it answers, and asks for credentials
        return f"reachable (/v2/ answered {status})"
    raise RuntimeError(f"/v2/ answered {status}: not an OCI registry")


def _router_probes(router: object) -> list[Probe]:
    kind = getattr(router, "type", "?")
    if kind == "nginx":
        return [Probe("routers", "nginx", True, lambda: _nginx_version(router.nginx)),
                Probe("routers", f"nginx config {router.config}", True, lambda: _writable_dir(router.config))]
    if kind == "sagemaker":
        return [Probe("routers", f"sagemaker {router.endpoint}", True, lambda: _sagemaker(router))]
    return [Probe("routers", kind, False, lambda: "configured (no probe for this router type)")]


def _nginx_version(binary: str) -> str:
    import subprocess

    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary}: not found on PATH")
    done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=TIMEOUT_S)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ") or f"{path} (no version)"


def _writable_dir(config: str) -> str:
    folder = Path(config).parent
    if not folder.is_dir():
        raise RuntimeError(f"no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise RuntimeError(f"{folder} is not writable")
    return "exists" if Path(config).exists() else f"{folder} writable (file not written yet)"


def _sagemaker(router: object) -> str:
    from mlship.extras import require

    session = require("boto3").session.Session(profile_name=router.profile, region_name=router.region)
    client = session.client("sagemaker", endpoint_url=router.endpoint_url, config=_quick_boto())
    described = client.describe_endpoint(EndpointName=router.endpoint)
    return f"endpoint {described['EndpointStatus']}"


def _quick_boto() -> object:
    from botocore.config import Config as BotoConfig

    return BotoConfig(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"total_max_attempts": 1})


def _docker_probe(cfg: Config) -> Probe:
    from mlship.deploy.engine import engine_address

    sections = cfg.deploy.model_extra or {}
    configured = cfg.deploy.runtime == "docker" or "docker" in sections
    settings = sections.get("docker")
    host, tls = getattr(settings, "host", None), getattr(settings, "tls", None)

    def run() -> str:
        from mlship.deploy.engine import connect

        client = connect(host, tls, timeout=TIMEOUT_S)
        try:
            version = client.version()
        finally:
            client.close()
        return f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"

    return Probe("runtimes", f"docker {engine_address(host)}", configured, run)


def _prometheus(url: str) -> str:
    import json

    body = _http_body(url.rstrip("/") + "/api/v1/status/buildinfo")
    version = json.loads(body or b"{}").get("data", {}).get("version")
    return f"reachable, Prometheus {version}" if version else "reachable"


def _http_status(url: str) -> int:
    import urllib.error

    try:
        with _opener().open(url, timeout=TIMEOUT_S) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _http_body(url: str) -> bytes:
    with _opener().open(url, timeout=TIMEOUT_S) as response:
        return response.read(65536)


def _opener() -> object:
    import urllib.request

    # No proxies from the environment: the probe asks the service itself.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _one_line(exc: BaseException) -> str:
    """The first line of a probe's failure (redacted with the rest by `run_probes`)."""
    from mlship.errors import MlshipError

    text = exc.one_line() if isinstance(exc, MlshipError) else f"{type(exc).__name__}: {exc}"
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _now() -> float:
    import time

    return time.monotonic()
