"""``autograph backup base``: physical base backups, the WAL stream, point-in-time recovery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from autograph.cli.backup import progress_bar
from autograph.cli.output import console, emit_json, human_age, human_size
from autograph.config import load_settings
from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.dr.postgres.wal_files import prune_wal, wal_summary
from autograph.errors import AutographError, InvalidInput
from autograph.secrets import load_credentials
from autograph.stack.infra import streaming_lag_bytes
from autograph.stack.lifecycle import Stack

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
base_app = typer.Typer(
    help="Physical base backups + continuous WAL: recovery to the latest point or a time.",
    no_args_is_help=True,
)


def _manager() -> PhysicalBackupManager:
    settings = load_settings()
    return PhysicalBackupManager(settings, load_credentials(settings))


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--to {value!r} is not an ISO 8601 time "
                           "(e.g. 2026-11-27T08:30:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@base_app.command("create")
def create(
    name: Annotated[str | None, typer.Option(help="default: manual_base_<ts>")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Take a base backup of the whole cluster (pg_basebackup) into the catalog."""
    with progress_bar() as progress:
        entry = _manager().create(name, progress=progress)
    if json_output:
        emit_json(entry)
    else:
        console.print(f"created {entry.name}: {human_size(entry.size_bytes)}, copies: "
                      f"{', '.join(entry.locations)}")


@base_app.command("list")
def list_backups(json_output: JsonOpt = False) -> None:
    """Base backups in both tiers, newest first."""
    listing = _manager().catalog.list()
    if json_output:
        emit_json(listing)
        return
    table = Table("name", "finished", "age", "size", "copies", "cluster")
    now = datetime.now(UTC)
    for entry in listing.backups:
        table.add_row(entry.name, entry.finished_at.isoformat(timespec="seconds"),
                      human_age((now - entry.finished_at).total_seconds()),
                      human_size(entry.size_bytes), ",".join(entry.locations),
                      str(entry.extra.get("system_identifier", "?")))
    console.print(table)
    for tier, why in listing.unreachable.items():
        console.print(f"[yellow]{tier} tier unreachable:[/] {why}")


@base_app.command("wal")
def wal(json_output: JsonOpt = False) -> None:
    """The WAL stream: is it streaming, how far behind, and what is stored per cluster."""
    settings = load_settings()
    creds = load_credentials(settings)
    try:
        lag = streaming_lag_bytes(settings, creds)
    except Exception as exc:  # PostgreSQL down: report, don't fail
        lag, why = None, type(exc).__name__
    else:
        why = "" if lag is not None else "receiver not connected"
    data = {"streaming": lag is not None, "lag_bytes": lag, "problem": why or None,
            "clusters": wal_summary(settings)}
    if json_output:
        emit_json(data)
        return
    state = (f"streaming, {human_size(lag)} behind" if lag is not None
             else f"NOT streaming ({why})")
    console.print(f"WAL stream: {state}")
    for sysid, info in data["clusters"].items():  # type: ignore[union-attr]
        console.print(f"  cluster {sysid}: {info['segments']} segments, "
                      f"{human_size(info['bytes'])}, newest {info['newest']} "
                      f"({human_age(info['newest_age_seconds'])} ago)")


@base_app.command("prune-wal")
def prune(json_output: JsonOpt = False) -> None:
    """Remove streamed WAL older than the oldest base backup of its cluster."""
    manager = _manager()
    removed = prune_wal(manager.settings, manager.catalog)
    if json_output:
        emit_json({"removed": removed})
    else:
        console.print(f"removed {len(removed)} WAL file(s)")


@base_app.command("recover")
def recover(
    to: Annotated[str | None, typer.Option("--to", help="ISO 8601 time; default: latest")]
    = None,
    backup: Annotated[str | None, typer.Option("--backup", help="base backup name")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    into: Annotated[Path | None, typer.Option(
        "--into", help="build the recovered cluster in this new folder and start it on "
        "--port (the live server is not touched; the way for an external PostgreSQL)")] = None,
    port: Annotated[int, typer.Option(help="with --into: loopback port of the recovered "
                                            "cluster")] = 55432,
    json_output: JsonOpt = False,
) -> None:
    """Rebuild the cluster from a base backup + streamed WAL (PostgreSQL restarts).

    The current data folder is kept beside the new one and put back if recovery fails. With
    --into, a separate recovered cluster is built and started instead.
    """
    target = _parse_time(to) if to else None
    if into is not None:
        _recover_into(into, port, backup, target, json_output)
        return
    if not yes and not typer.confirm("PostgreSQL will be stopped and its cluster replaced "
                                     "(the current one is kept). Continue?"):
        raise AutographError("cancelled")
    manager = _manager()
    stack = Stack(manager.settings, manager.creds)
    with progress_bar() as progress:
        result = manager.recover(lambda: stack.stop("postgres"),
                                 lambda: stack.start("postgres"),
                                 name=backup, target_time=target, progress=progress)
    if stack.supervisor.running():
        stack.restart("walstream")
    if json_output:
        emit_json(result)
    else:
        console.print(f"recovered from {result.backup_name} in {result.duration_seconds:.1f} s "
                      f"({result.wal_segments} WAL segments, at {result.replayed_to}); previous "
                      f"cluster kept at {result.previous_data_dir}")


def _recover_into(folder: Path, port: int, backup: str | None, target: datetime | None,
                  json_output: bool) -> None:
    from autograph.dr.postgres.local_pitr import recover_into

    if not 1024 <= port <= 65535:
        raise InvalidInput(f"--port {port} is not an unprivileged TCP port (1024-65535)")
    with progress_bar() as progress:
        result = recover_into(_manager(), folder, port, name=backup, target_time=target,
                              progress=progress)
    if json_output:
        emit_json(result)
        return
    console.print(f"recovered {result.backup_name} into {result.data_dir} in "
                  f"{result.duration_seconds:.1f} s ({result.wal_segments} WAL segments, at "
                  f"{result.replayed_to}; {result.schema})")
    print(result.instructions)


def register(backup_app: typer.Typer) -> None:
    """Add the ``base`` subgroup to ``autograph backup``."""
    backup_app.add_typer(base_app, name="base")
