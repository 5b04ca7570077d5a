"""``autograph dr kit export|verify``: the recovery kit, what a bare machine needs besides the
off-site store. The passphrase comes from ``AUTOGRAPH_KIT_PASSPHRASE`` or a prompt, never argv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from autograph.cli.output import console, emit_json
from autograph.config import load_settings
from autograph.errors import InvalidInput

PASSPHRASE_ENV = "AUTOGRAPH_KIT_PASSPHRASE"

kit_app = typer.Typer(help="The recovery kit: export it, keep it off the machine, verify it.",
                      no_args_is_help=True)


def _echo(message: str) -> None:
    console.print(message, highlight=False, markup=False)


def passphrase(path: Path, *, new: bool) -> str | None:
    """The kit passphrase: the environment, else asked on the terminal (twice for a new kit);
    None when there is neither (a sealed kit then fails with its own message)."""
    given = os.environ.get(PASSPHRASE_ENV)
    if given:
        return given
    if not sys.stdin.isatty():
        if new:
            raise InvalidInput(f"set {PASSPHRASE_ENV} (or run in a terminal to type it) to "
                               "encrypt the kit, or pass --plain to write it unencrypted")
        return None
    return str(typer.prompt(f"passphrase for {path}", hide_input=True,
                            confirmation_prompt=new))


@kit_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="where to write the kit (mode 0600)")],
    plain: Annotated[bool, typer.Option(
        "--plain", help="write the kit unencrypted (only into a store that is itself "
                        "encrypted, e.g. a password manager)")] = False,
) -> None:
    """Write the recovery kit: off-site store and credentials, keys, secrets, deployment id."""
    from autograph.dr.kit.check import build_kit
    from autograph.dr.kit.document import plain as plain_bytes
    from autograph.dr.kit.document import seal, write_kit

    settings = load_settings()
    secret = None if plain else passphrase(out, new=True)
    kit = build_kit(settings)
    write_kit(out, plain_bytes(kit) if plain else seal(kit, secret or ""))
    _echo(f"recovery kit written to {out} (mode 0600, "
          f"{'UNENCRYPTED' if plain else 'encrypted with your passphrase'}); deployment "
          f"{kit.deployment_id}, off-site store {kit.offsite.endpoint}")
    _echo("WARNING: whoever holds this kit (and its passphrase) can read every backup. "
          "Losing it (or the passphrase) makes the off-site backups unreadable after the "
          "loss of this machine. Keep it off this machine: a password manager or a safe, "
          "and check it with `autograph dr kit verify FILE`.")


@kit_app.command("verify")
def verify(
    kit_file: Annotated[Path, typer.Argument(metavar="FILE", help="the kit to check")],
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")]
    = False,
) -> None:
    """Open the off-site store with the kit alone; say what it can restore and to when."""
    from autograph.dr.kit.check import verify_kit
    from autograph.dr.kit.document import is_sealed, read_kit

    secret = passphrase(kit_file, new=False) if is_sealed(kit_file) else None
    found = verify_kit(read_kit(kit_file, secret), load_settings())
    if json_output:
        emit_json(found)
        return
    _echo(f"kit OK: deployment {found.deployment_id}, off-site store {found.endpoint}; "
          f"manifest {found.manifest_read} read with the kit alone")
    for what, item in (("database dumps", found.database), ("base backups", found.base),
                       *((f"bucket {b}", r) for b, r in found.buckets.items())):
        _echo(f"  {what}: {item.count} restorable, newest {item.newest or '-'}"
              + (f" ({item.newest_at:%Y-%m-%dT%H:%M:%SZ})" if item.newest_at else ""))
    when = f"{found.restorable_to:%Y-%m-%dT%H:%M:%SZ}" if found.restorable_to else "nothing"
    _echo(f"the database can be restored to {when}")
    for problem in found.problems:
        _echo(f"problem: {problem}")
