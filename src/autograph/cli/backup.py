"""``autograph backup``: the ``db`` subgroup (PostgreSQL backups) and room for others.

``autograph backup db create|list|verify|restore|rollback|delete|sync``. Other modules add
subgroups or commands through their own ``register(backup_app)``: ``cli/backup_objects.py``
(``backup objects …``) and ``cli/backup_retention.py`` (``backup prune``, ``pin`` …).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import typer

from autograph.cli.lazy import CommandGroup, Lazy, LazyGroup
from autograph.cli.output import LazyConsole, console, emit_json, human_size
from autograph.clock import utc_now
from autograph.errors import AutographError

if TYPE_CHECKING:  # the DR core is imported inside the commands: keeps start-up fast
    from autograph.dr.catalog import SyncReport
    from autograph.dr.models import BackupEntry, ProgressFn
    from autograph.dr.postgres import DatabaseBackupManager

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
NameArg = Annotated[str, typer.Argument(help="backup name (see `autograph backup db list`)")]

out = LazyConsole()
HELP_ASKED = "autograph.help_asked"  # ctx.meta key: a subcommand's --help is on the line
db_app = typer.Typer(cls=CommandGroup, no_args_is_help=True,
                     help="PostgreSQL backups (pg_dump -Fc, local disk + S3).")


def _manager() -> DatabaseBackupManager:
    from autograph.config import load_settings
    from autograph.dr.postgres import DatabaseBackupManager
    from autograph.secrets import load_credentials

    settings = load_settings()
    return DatabaseBackupManager(settings, load_credentials(settings))


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressFn]:
    """A rich progress display on stderr, as a ProgressFn (step text, fraction or None).

    Only on a terminal: elsewhere rich would not draw it (transient), yet importing it and its
    refresh thread would cost start-up and CPU time (scripts, cron, the benches)."""
    if not enabled or not console.is_terminal:
        yield lambda _step, _fraction: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with Progress(*columns, console=console.rich, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def update(step: str, fraction: float | None) -> None:
            if fraction is None:
                bar.update(task, description=step, total=None)
            else:
                bar.update(task, description=step, total=1.0, completed=fraction)

        yield update


def _age(moment: datetime) -> str:
    seconds = max(0.0, (utc_now() - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _size(n: int) -> str:
    return human_size(n)


def _describe(entry: BackupEntry) -> str:
    copies = ", ".join(entry.locations) or "none"
    return (f"{entry.name}: {_size(entry.size_bytes)}, copies: {copies}, "
            f"verification: {entry.verification.status}"
            + (f" (S3 copy missing: {entry.s3_error})" if entry.s3_copy == "missing" else ""))


@db_app.command("create")
def create(
    name: Annotated[str | None, typer.Option("--name", help="default: manual_backup_<ts>")]
    = None,
    scheduled: Annotated[bool, typer.Option(help="name and tag it as a scheduled backup")]
    = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="extra retention tag")] = None,
    verify: Annotated[bool, typer.Option(help="verify after the dump")] = True,
    upload: Annotated[bool, typer.Option(help="copy to the S3 tier")] = True,
    json_output: JsonOpt = False,
) -> None:
    """Dump the database, verify the dump, copy it to S3, and commit it to the catalog."""
    with progress_bar() as progress:
        entry = _manager().create(name, scheduled=scheduled, tags=tuple(tag or ()),
                                  verify=verify, upload=upload, progress=progress)
    if json_output:
        emit_json(entry)
    else:
        out.print(f"created {_describe(entry)}")


@db_app.command("list")
def list_backups(json_output: JsonOpt = False) -> None:
    """Database backups in both tiers, newest first: copies, size, age, verification."""
    listing = _manager().list()
    if json_output:
        emit_json(listing)
        return
    from rich.table import Column, Table

    table = Table("age", "size", "copies", "verified", "tags")
    table.columns.insert(0, Column("name", no_wrap=True))
    for entry in listing.backups:
        status = entry.verification.status
        colour = {"passed": "green", "failed": "red"}.get(status, "yellow")
        table.add_row(entry.name, _age(entry.created_at),
                      _size(entry.size_bytes), ",".join(entry.locations),
                      f"[{colour}]{status}[/]", ",".join(entry.tags))
    out.print(table)
    for tier, why in listing.unreachable.items():
        console.print(f"[yellow]warning:[/] {tier} tier unreachable: {why}")
    for problem in listing.problems:
        console.print(f"[yellow]warning:[/] {problem}")


@db_app.command("verify")
def verify(name: NameArg,
           deep: Annotated[bool, typer.Option(help="also restore to a scratch database and "
                                                   "compare row counts")] = False,
           json_output: JsonOpt = False) -> None:
    """Check a backup's copies (checksum, pg_restore --list; --deep: a trial restore)."""
    with progress_bar() as progress:
        entry = _manager().verify(name, deep=deep, progress=progress)
    if json_output:
        emit_json(entry)
    else:
        for check, outcome in entry.verification.checks.items():
            out.print(f"  {check}: {outcome}")
        out.print(f"{name}: verification passed")


@db_app.command("restore")
def restore(name: NameArg,
            target: Annotated[str | None, typer.Option(help="database to replace "
                                                            "(default: the live one)")] = None,
            jobs: Annotated[int | None, typer.Option(help="pg_restore jobs (default: cores)")]
            = None,
            yes: YesOpt = False, json_output: JsonOpt = False) -> None:
    """Restore into a new database, check it, and swap it in (the previous one is kept)."""
    manager = _manager()
    database = target or manager.server.live_database
    if not yes:
        manager.get(name)  # an unknown name is said before asking to replace anything
        typer.confirm(f"replace database {database} with backup {name}? (the current one is "
                      "kept for rollback)", abort=True)
    with progress_bar() as progress:
        result = manager.restore(name, target=target, jobs=jobs, progress=progress)
    if json_output:
        emit_json(result)
        return
    for step in result.steps:
        out.print(f"  {step.name}: {step.duration_seconds:.1f}s  {step.detail}")
    out.print(f"restored {name} into {result.target} in {result.duration_seconds:.1f}s"
              + (f"; previous database kept as {result.previous}" if result.previous else ""))


@db_app.command("rollback")
def rollback(database: Annotated[str | None, typer.Argument(
                 help="a kept <db>__pre_restore_<ts> (default: the newest)")] = None,
             yes: YesOpt = False, json_output: JsonOpt = False) -> None:
    """Put back the database a restore replaced."""
    manager = _manager()
    if not yes:
        typer.confirm("swap the pre-restore database back into place?", abort=True)
    result = manager.rollback(database)
    if json_output:
        emit_json(result)
    else:
        out.print(f"{result['database']} is {result['restored_from']} again; the replaced one "
                  f"is kept as {result['displaced']}")


@db_app.command("delete")
def delete(name: NameArg, yes: YesOpt = False, json_output: JsonOpt = False) -> None:
    """Delete a backup from both tiers."""
    if not yes:
        typer.confirm(f"delete backup {name} from every tier?", abort=True)
    show_deleted(name, _manager().delete(name), json_output)


@db_app.command("sync")
def sync(json_output: JsonOpt = False) -> None:
    """Upload local backups missing from S3; remove files of interrupted backups."""
    with progress_bar() as progress:
        report = _manager().sync(progress=progress)
    show_sync(report, json_output)


def show_deleted(name: str, tiers: list[str], json_output: bool) -> None:
    """Report a deleted backup and the tiers it was removed from."""
    if json_output:
        emit_json({"deleted": name, "locations": tiers})
    else:
        out.print(f"deleted {name} from {', '.join(tiers)}")


def show_sync(report: SyncReport, json_output: bool) -> None:
    """Report what a sync uploaded and removed; raise if any upload failed."""
    if json_output:
        emit_json(report)
    else:
        out.print(f"uploaded {len(report.uploaded)}: {', '.join(report.uploaded) or '-'}")
        for name, why in report.failed.items():
            console.print(f"[red]failed[/] {name}: {why}")
        if report.removed_incomplete:
            out.print(f"removed incomplete: {', '.join(report.removed_incomplete)}")
    if report.failed:
        raise AutographError(f"{len(report.failed)} backup(s) could not be uploaded")


def _journal_events(ctx: typer.Context) -> None:
    """Record this command's backup events (failures, small backups, verifications) in the
    event journal, where the gateway's monitor turns them into alerts.

    Not for ``--help``: click runs this before the subcommand reads its options, and loading
    the settings would be most of the help's start-up time."""
    if ctx.meta.get(HELP_ASKED):
        return
    from autograph.config import load_settings
    from autograph.dr.ops import hooks, journal, leases

    settings = load_settings()
    hooks.on_event(journal.recorder(journal.journal_path(settings.dr_dir)))
    if settings.leases == "cluster":  # one operation per kind across hosts, CLI included
        from autograph.secrets import load_credentials

        leases.install(settings, load_credentials(settings))


def register(app: typer.Typer) -> None:
    """Add ``autograph backup`` to ``app`` (the other kinds attach their subgroups to
    ``backup_app``: see :func:`autograph.cli.main.register_all`)."""
    app.add_typer(backup_app, name="backup")


class BackupGroup(LazyGroup):
    """``autograph backup``: ``db`` is here, the other kinds' commands are imported when used
    (cli/lazy.py), which keeps start-up fast."""

    lazy: ClassVar[dict[str, Lazy]] = {
        "prune": Lazy("autograph.cli.backup_retention", "retention_app", "prune"),
        "pin": Lazy("autograph.cli.backup_retention", "retention_app", "pin"),
        "objects": Lazy("autograph.cli.backup_objects", "objects_app"),
        "base": Lazy("autograph.cli.backup_base", "base_app"),
        "snapshots": Lazy("autograph.cli.backup_snapshots", "snapshots_app"),
        "offsite": Lazy("autograph.cli.backup_offsite", "offsite_app"),
    }

    def invoke(self, ctx: Any) -> object:  # typer vendors click: its Context type is private
        # What follows the subcommand's name, read before the group callback runs (and clears).
        ctx.meta[HELP_ASKED] = "--help" in ctx.args
        return super().invoke(ctx)


backup_app = typer.Typer(cls=BackupGroup, no_args_is_help=True, callback=_journal_events,
                         help="Back up and restore the database and the buckets.")
backup_app.add_typer(db_app, name="db")
