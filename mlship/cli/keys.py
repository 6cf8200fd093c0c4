"""`mlship keys`: signing keys for edge bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mlship.cli._common import config_for, state
from mlship.cli.completion import complete_target

app = typer.Typer(help="Signing keys for edge bundles.", no_args_is_help=True)


@app.command("generate")
def keys_generate(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write NAME.key and NAME.pub."),
    name: str = typer.Option("mlship", "--name", help="File name of the pair."),
    role: Optional[str] = typer.Option(None, "--role", help="Name the pairs ROLE-1, ROLE-2, … (TUF role keys)."),
    count: int = typer.Option(1, "--count", min=1, max=100, help="With --role: how many pairs."),
) -> None:
    """Make Ed25519 key pairs: NAME.key (keep it secret) and NAME.pub (for devices)."""
    from mlship.bundles.signing import generate_keys

    from mlship.errors import UsageError

    if count > 1 and not role:
        raise UsageError("--count needs --role (the pairs are named ROLE-1, ROLE-2, …)")
    names = [f"{role}-{i}" for i in range(1, count + 1)] if role else [name]
    taken = [str(directory / (n + ext)) for n in names for ext in (".key", ".pub") if (directory / (n + ext)).exists()]
    if taken:  # checked before the first pair is written, so a clash leaves nothing half-made
        raise UsageError(f"{taken[0]} already exists", hint="Choose another --role or directory")
    pairs = [generate_keys(directory, n) for n in names]
    state(ctx).console.result(
        [{"private_key": str(k), "public_key": str(p)} for k, p in pairs] if role else
        {"private_key": str(pairs[0][0]), "public_key": str(pairs[0][1])},
        lambda out: [out.print(f"wrote {k} (secret, mode 0600) and {p}", markup=False) for k, p in pairs])


@app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Model name [name in mlship.yaml]."),
    role: str = typer.Option(..., "--role", help="The TUF role whose keys change: root, targets, snapshot, timestamp."),
    new_keys: list[str] = typer.Option(..., "--new-key", help="A new key of the role (private: it signs at once); "
                                       "repeat for k of n. A file, env:VAR or fd:N."),
    threshold: Optional[int] = typer.Option(None, "--threshold", help="Signatures the role needs [its current one]."),
    to: str = typer.Option(..., "--to", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…",
        autocompletion=complete_target),
) -> None:
    """Write NAME's next TUF root handing ROLE to the new keys, signed by the old root keys (signing.keys.root)
    and the new; then put the new keys in signing.keys.ROLE."""
    from mlship.targets.service import rotate_keys
    cfg = config_for(ctx)
    result = rotate_keys(name or cfg.name or "", to, cfg.targets, cfg.tuf_signing(), role, new_keys, threshold)
    state(ctx).console.result(result.model_dump(), lambda out: out.print(
        f"{result.name} in {result.target}: root {result.root} gives {result.role} {len(result.added)} key(s), "
        f"threshold {result.threshold}, {len(result.revoked)} revoked; now set signing.keys.{result.role} "
        "to the new keys", markup=False))
