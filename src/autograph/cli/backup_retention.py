"""``autograph backup prune [--dry-run]`` and ``autograph backup pin NAME [--unpin]``.

Prune applies the plan's retention (database 7 daily / 4 weekly / 12 monthly; buckets 4 weekly /
12 monthly) to both tiers and prints every decision with its reasons; manual, pinned, busy and
the newest verified backups are always kept.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from autograph.cli.output import console, emit_json
from autograph.clock import utc_now
from autograph.config import load_settings
from autograph.dr.catalog import Catalog, open_catalog
from autograph.dr.retention.prune import PRUNED_KINDS, PruneReport, pin, prune
from autograph.errors import OperationFailed
from autograph.secrets import load_credentials

out = Console()


class KindChoice(StrEnum):
    """Which kind of backups."""

    database = "database"
    bucket = "bucket"


JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
KindOpt = Annotated[KindChoice | None, typer.Option("--kind", help="only this kind "
                                                                    "(default: both)")]


def _catalogs(kind: KindChoice | None) -> list[Catalog]:
    settings = load_settings()
    creds = load_credentials(settings)
    kinds = [kind.value] if kind else list(PRUNED_KINDS)
    return [open_catalog(settings, creds, k) for k in kinds]  # type: ignore[arg-type]


def _print_report(report: PruneReport) -> None:
    table = Table("kind", "source", "backup", "decision", "why", show_lines=False)
    colours = {"kept": "green", "removed": "red", "would remove": "yellow",
               "not removed": "magenta"}
    for item in report.decisions:
        verdict = item.outcome + (f": {item.error}" if item.error else "")
        table.add_row(item.kind, item.source, item.name,
                      f"[{colours[item.outcome]}]{verdict}[/]", "; ".join(item.reasons))
    out.print(table)
    gone = report.removed
    verb = "would remove" if report.dry_run else "removed"
    out.print(f"{verb} {len(gone)} of {len(report.decisions)} backups"
              + (" (dry run: nothing changed)" if report.dry_run else ""))
    for where, why in report.unreachable.items():
        console.print(f"[yellow]warning:[/] {where} unreachable, nothing deleted there: {why}")


def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go, and why; "
                                                            "change nothing")] = False,
    kind: KindOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Apply the retention policy to both tiers; print each decision and its reason."""
    report = prune(_catalogs(kind), utc_now(), dry_run=dry_run)
    if json_output:
        emit_json({**report.model_dump(mode="json"), "removed": report.removed,
                   "failed": report.failed})
    else:
        _print_report(report)
    if report.failed:
        raise OperationFailed(f"{len(report.failed)} backup(s) could not be removed")


def pin_command(
    name: Annotated[str, typer.Argument(help="backup name")],
    unpin: Annotated[bool, typer.Option("--unpin", help="remove the pin instead")] = False,
    kind: KindOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Pin a backup so that retention never prunes it (or --unpin it)."""
    entry = pin(_catalogs(kind), name, pinned=not unpin)
    if json_output:
        emit_json(entry)
    else:
        out.print(f"{entry.name} ({entry.kind}) is {'no longer ' if unpin else ''}pinned; "
                  f"tags: {', '.join(entry.tags) or '-'}")


def register(backup_app: typer.Typer) -> None:
    """Add ``prune`` and ``pin`` to the ``autograph backup`` group."""
    backup_app.command("prune")(prune_command)
    backup_app.command("pin")(pin_command)


retention_app = typer.Typer()  # what the ``backup`` group loads ``prune`` and ``pin`` from
register(retention_app)
