"""`mlship keys`: signing keys for edge bundles."""

from __future__ import annotations

from pathlib import Path

import typer

from mlship.cli._common import state

app = typer.Typer(help="Signing keys for edge bundles.", no_args_is_help=True)


@app.command("generate")
def keys_generate(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write NAME.key and NAME.pub."),
    name: str = typer.Option("mlship", "--name", help="File name of the pair."),
) -> None:
    """Make an Ed25519 key pair: NAME.key (keep it secret) and NAME.pub (for devices)."""
    from mlship.bundles.signing import generate_keys

    private, public = generate_keys(directory, name)
    state(ctx).console.result({"private_key": str(private), "public_key": str(public)},
                              lambda out: out.print(f"wrote {private} (secret, mode 0600) and {public}", markup=False))
