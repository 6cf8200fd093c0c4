"""`mlship edge`: the device side of edge deployment."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlship.cli._common import PROVIDER_FALLBACK_OPTION, PROVIDER_OPTION, config_for, provider_request, state
from mlship.cli.completion import complete_target

app = typer.Typer(help="On the device: sync bundles from a target, roll back, serve offline.", no_args_is_help=True)


@app.command("sync")
def sync(
    ctx: typer.Context,
    source: str = typer.Option(..., "--from", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…",
        autocompletion=complete_target),
    name: Optional[str] = typer.Option(None, "--name", help="Bundle name [name in mlship.yaml]."),
    channel: str = typer.Option("stable", "--channel", help="Channel to follow."),
    directory: Path = typer.Option(..., "--dir", help="The device's model directory."),
    public_key: Optional[Path] = typer.Option(None, "--public-key", help="Require bundles signed by this key."),
    root: Optional[Path] = typer.Option(None, "--root", help="Trusted TUF root (N.root.json) for a device not yet initialised."),
    health_cmd: Optional[str] = typer.Option(None, "--health-cmd", help="Check a new version with this command (no shell; exit 0 is healthy) [the bundle's smoke check]."),
    health_timeout: float = typer.Option(60.0, "--health-timeout", help="Seconds the health check may take."),
    retry: bool = typer.Option(False, "--retry", help="Install a version held back by a failed health check again."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the device's state to NAME/devices/ID/status.json."),
    upload_logs: Optional[Path] = typer.Option(None, "--upload-logs", help="Also ship finished prediction logs from this directory."),
    device: Optional[str] = typer.Option(None, "--device", help="Device id for status and logs [the id kept in DIR]."),
) -> None:
    """Download the channel's bundle when it changed, verify it, switch to it atomically."""
    from mlship.edge.service import SyncRequest, sync_device
    from mlship.errors import CheckFailedError, UsageError

    cfg = config_for(ctx)
    bundle_name = name or cfg.name
    if not bundle_name:
        raise UsageError("no bundle name", hint="Pass --name or set `name:` in mlship.yaml")
    result = sync_device(SyncRequest(source=source, name=bundle_name, channel=channel, directory=directory,
                                     public_key=public_key, root=root, upload_logs=upload_logs, device=device,
                                     health_cmd=health_cmd, health_timeout=health_timeout, retry=retry,
                                     report=report, configured=cfg.targets))
    console = state(ctx).console
    console.result(result, lambda out: out.print(_synced(bundle_name, channel, result, upload_logs), markup=False))
    if result.get("status", {}).get("error"):
        console.warn(f"status not reported: {result['status']['error']}")
    held = result.get("held_back")
    if held:
        action = "rolled back to" if result.get("rolled_back") else "not installed again; still on"
        raise CheckFailedError(f"{bundle_name} {held['version']} failed its health check ({held['check']}: "
                               f"{held['detail']}); {action} {result['version'] or 'no version'}",
                               hint="Publish a fixed version, or pass --retry")


def _synced(name: str, channel: str, result: dict, upload_logs: Optional[Path]) -> str:
    if result.get("held_back"):
        line = f"{name}@{channel}: {result['version'] or 'no version'} (kept: {result['held_back']['version']} failed its health check)"
    elif result["changed"]:
        line = f"{name}@{channel}: {result['version']}" + (
            f" (replaced a local copy that failed verification, {result['downloaded']:,} bytes)"
            if result.get("repaired") else f" (switched from {result['previous']}, {result['downloaded']:,} bytes)"
            if result.get("previous") else f" (installed, {result['downloaded']:,} bytes)")
        if result.get("health"):
            line += f"; health: {result['health']['check']}, {result['health']['seconds']:.1f} s"
    else:
        line = f"{name}@{channel}: {result['version']} (up to date, nothing downloaded)"
    return line + (f"; shipped {len(result['uploaded_logs'])} log files" if upload_logs is not None else "")


@app.command("init")
def init(
    ctx: typer.Context,
    directory: Path = typer.Option(..., "--dir", help="The device's model directory."),
    root: Path = typer.Option(..., "--root", help="The trusted TUF root (NAME/tuf/N.root.json from the publisher)."),
    device_id: Optional[str] = typer.Option(None, "--device-id", help="The device's id in status reports and logs [host name plus a random suffix]."),
) -> None:
    """Provision the device's trusted TUF root in DIR/tuf/: from then on every sync is verified by TUF."""
    from mlship.edge.service import init_device

    result = init_device(directory, root, device_id)
    state(ctx).console.result(result, lambda out: out.print(
        f"{directory}: device {result['device']} trusts root version {result['root_version']} from {root}",
        markup=False))


@app.command("fleet")
def fleet(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Model name [name in mlship.yaml]."),
    source: str = typer.Option(..., "--from", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…"),
    stale_after: str = typer.Option("1d", "--stale-after", help="A device whose last sync is older is stale (e.g. 30m, 12h, 2d)."),
) -> None:
    """Show the fleet: the versions devices run, stale devices and failures, from their status reports."""
    from mlship.cli.edge_view import render_fleet
    from mlship.edge.service import fleet_status

    cfg = config_for(ctx)
    report = fleet_status(name or cfg.name or "", source, stale_after, cfg.targets)
    state(ctx).console.result(report.model_dump(), lambda out: render_fleet(out, report))


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Model name [name in mlship.yaml]."),
    to: str = typer.Option(..., "--to", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…",
        autocompletion=complete_target),
) -> None:
    """Re-sign NAME's TUF snapshot and timestamp with fresh expiry (run it from a CI cron job)."""
    from mlship.edge.service import refresh_metadata

    cfg = config_for(ctx)
    result = refresh_metadata(name or cfg.name or "", to, cfg.targets, cfg.tuf_signing())
    state(ctx).console.result(result.model_dump(), lambda out: out.print(
        f"{result.name} in {result.target}: timestamp {result.timestamp} (expires {result.expires['timestamp']}), "
        f"snapshot {result.snapshot} (expires {result.expires['snapshot']})", markup=False))


@app.command("rollback")
def rollback(ctx: typer.Context, directory: Path = typer.Option(..., "--dir", help="The device's model directory.")) -> None:
    """Switch back to the previous version."""
    from mlship.edge.device import rollback as rollback_dir

    result = rollback_dir(directory)
    state(ctx).console.result(result, lambda out: out.print(f"current: {result['version']} (was {result['previous']})",
                                                                    markup=False))


@app.command("run")
def run(
    ctx: typer.Context,
    directory: Path = typer.Option(..., "--dir", help="The device's model directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8080, "--port", help="Port to bind."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Prediction logs on local disk."),
    provider: Optional[List[str]] = PROVIDER_OPTION,
    provider_fallback: Optional[bool] = PROVIDER_FALLBACK_OPTION,
) -> None:
    """Serve the current bundle offline (same endpoints as mlship serve)."""
    from mlship.edge.device import current_manifest
    from mlship.serve.server import serve
    from mlship.serve.settings import ServeSettings

    model, manifest = current_manifest(directory)
    settings = ServeSettings(model_path=model, name=manifest.name, version=manifest.version, variant="edge",
                             host=host, port=port, log_dir=log_dir, features=manifest.declared_features(),
                             providers=provider_request(config_for(ctx), provider, provider_fallback))
    console = state(ctx).console

    def announce(service) -> None:
        if service.runner.providers.fallback_note():
            console.warn(service.runner.providers.fallback_note())
        console.info(f"serving {service.name} {service.version} from {directory} at {host}:{port} on "
                     f"{service.runner.providers.chosen}")

    serve(settings, on_ready=announce)
