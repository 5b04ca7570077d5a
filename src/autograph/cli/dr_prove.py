"""``autograph dr prove [KIND]``: the gateway's daily restore test, now, from the command line.

Restores the newest backup of each kind (or of ``KIND``) into scratch resources, compares it
and records the result (manifest and proof history) exactly as the schedule does. Exits 0 when
every test passed, 1 otherwise.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from autograph.cli.output import emit_json
from autograph.config import load_settings
from autograph.errors import InvalidInput
from autograph.secrets import load_credentials

out = Console(stderr=True)


def prove_command(
    kind: Annotated[str, typer.Argument(
        help="database | basebackup | bucket | snapshot | all")] = "all",
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")]
    = False,
) -> None:
    """Restore-test the newest backups now (what the gateway does daily) and record it."""
    from autograph.dr.ops import locks
    from autograph.dr.proof.models import ProofRecord
    from autograph.dr.proof.run import Prover
    from autograph.dr.proof.schedule import proven_kinds

    settings = load_settings()
    kinds = proven_kinds(settings)
    if kind != "all" and kind not in kinds:
        raise InvalidInput(f"unknown or unconfigured kind {kind!r}: use one of "
                           f"{', '.join(kinds)} or all")
    prover = Prover(settings, load_credentials(settings))
    records: list[ProofRecord] = []
    # The gateway's lock: its restore tests and ours never share (or clean) scratch resources.
    with locks.acquire(settings.backups_dir, "proof", "restore tests (CLI)"):
        prover.clean_leftovers()
        for one in kinds if kind == "all" else [kind]:
            out.print(f"restore test of {one} …")
            record = prover.prove(one)  # type: ignore[arg-type]
            records.append(record)
            colour = "green" if record.status == "passed" else "red"
            out.print(f"  [{colour}]{record.status}[/] in {record.duration_seconds:.1f} s: "
                      f"{record.compared or record.detail}")
    if json_output:
        emit_json([r.model_dump(mode="json") for r in records])
    if any(r.status != "passed" for r in records):
        raise typer.Exit(1)


def register(dr_app: typer.Typer) -> None:
    """Attach ``autograph dr prove``."""
    dr_app.command("prove")(prove_command)
