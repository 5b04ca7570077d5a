"""``autograph backup objects``: bucket backups (tar.gz archives, local disk + S3).

``create [BUCKET]`` (default: every application bucket) · ``list`` · ``buckets`` · ``verify`` ·
``restore`` · ``delete`` · ``sync``. Progress (objects and bytes) on stderr; ``--json`` on stdout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from autograph.cli.backup import (
    JsonOpt,
    YesOpt,
    _age,
    _describe,
    _size,
    out,
    progress_bar,
    show_deleted,
    show_sync,
)
from autograph.cli.output import console, emit_json
from autograph.errors import AutographError

if TYPE_CHECKING:  # the DR core is imported inside the commands: `--help` needs none of it
    from autograph.dr.buckets.backup import CountsFn
    from autograph.dr.buckets.manager import MinIOBucketBackupManager
    from autograph.dr.models import ProgressFn

NameArg = Annotated[str, typer.Argument(help="backup name (see `autograph backup objects list`)")]

objects_app = typer.Typer(
    help="Bucket backups (tar.gz with metadata, local disk + S3).", no_args_is_help=True
)


def _manager() -> MinIOBucketBackupManager:
    from autograph.config import load_settings
    from autograph.dr.buckets.manager import MinIOBucketBackupManager
    from autograph.secrets import load_credentials

    settings = load_settings()
    return MinIOBucketBackupManager(settings, load_credentials(settings))


@contextmanager
def bars(enabled: bool = True) -> Iterator[tuple[ProgressFn, CountsFn]]:
    """One rich display on stderr: the current step, an objects bar and a bytes bar."""
    if not enabled:
        yield (lambda *_args: None), (lambda *_args: None)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    columns = (
        TextColumn("{task.description}", table_column=Column(width=34)),
        BarColumn(),
        TextColumn("{task.fields[figures]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console.rich, transient=True) as display:
        step = display.add_task("starting", total=None, figures="")
        objects = display.add_task("objects", total=None, figures="", visible=False)
        size = display.add_task("bytes", total=None, figures="", visible=False)

        def on_step(text: str, fraction: float | None) -> None:
            display.update(step, description=text[:34])

        def on_counts(phase: str, done: int, of: int, size_done: int, size_of: int) -> None:
            if of:
                display.update(
                    objects,
                    description=f"  {phase}: objects",
                    completed=done,
                    total=of,
                    figures=f"{done}/{of}",
                    visible=True,
                )
            display.update(
                size,
                description=f"  {phase}: bytes",
                completed=size_done,
                total=size_of or None,
                visible=True,
                figures=f"{_size(size_done)}" + (f" / {_size(size_of)}" if size_of else ""),
            )

        yield on_step, on_counts


@objects_app.command("create")
def create(
    bucket: Annotated[
        str | None, typer.Argument(help="bucket to back up (default: every application bucket)")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="backup name (one bucket only; default: manual_<bucket>_<ts>)"),
    ] = None,
    scheduled: Annotated[bool, typer.Option(help="name and tag it as scheduled")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="extra retention tag")] = None,
    verify: Annotated[bool, typer.Option(help="read the archive back in full")] = True,
    upload: Annotated[bool, typer.Option(help="copy it to the S3 tier")] = True,
    workers: Annotated[int, typer.Option(min=1, max=64, help="concurrent fetches")] = 16,
    json_output: JsonOpt = False,
) -> None:
    """Archive a bucket (default: every application bucket), verify it, copy it to S3."""
    manager = _manager()
    manager.workers = workers
    if name and not bucket:
        raise AutographError("--name names one backup: give a BUCKET too")
    from autograph.dr.buckets.models import validate_bucket
    from autograph.dr.models import validate_name

    if name:
        validate_name(name)
    if bucket:
        validate_bucket(bucket)
    with bars() as (progress, counts):
        if bucket:
            entries = [
                manager.create(
                    bucket,
                    name,
                    scheduled=scheduled,
                    tags=tuple(tag or ()),
                    verify=verify,
                    upload=upload,
                    progress=progress,
                    counts=counts,
                )
            ]
        else:
            entries = manager.create_all(
                scheduled=scheduled,
                tags=tuple(tag or ()),
                verify=verify,
                upload=upload,
                progress=progress,
                counts=counts,
            )
    if json_output:
        emit_json(entries[0] if bucket else {"backups": entries})
        return
    for entry in entries:
        deleted = entry.extra.get("deleted_during_backup_count") or 0
        out.print(
            f"created {_describe(entry)}; {entry.object_count} objects"
            + (f", {deleted} deleted during the backup" if deleted else "")
        )


@objects_app.command("list")
def list_backups(
    bucket: Annotated[str | None, typer.Option(help="only backups of this bucket")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Bucket backups in both tiers, newest first."""
    listing = _manager().list(bucket)
    if json_output:
        emit_json(listing)
        return
    from rich.table import Column, Table

    table = Table("bucket", "age", "objects", "size", "copies", "verified", "tags")
    table.columns.insert(0, Column("name", no_wrap=True))
    for entry in listing.backups:
        status = entry.verification.status
        colour = {"passed": "green", "failed": "red"}.get(status, "yellow")
        table.add_row(
            entry.name,
            entry.source,
            _age(entry.created_at),
            str(entry.object_count or 0),
            _size(entry.size_bytes),
            ",".join(entry.locations),
            f"[{colour}]{status}[/]",
            ",".join(entry.tags),
        )
    out.print(table)
    for tier, why in listing.unreachable.items():
        console.print(f"[yellow]warning:[/] {tier} tier unreachable: {why}")
    for problem in listing.problems:
        console.print(f"[yellow]warning:[/] {problem}")


@objects_app.command("buckets")
def buckets(json_output: JsonOpt = False) -> None:
    """Buckets of the application S3 server: objects, total size, newest backup."""
    listing = _manager().buckets()
    if json_output:
        emit_json(listing)
        return
    from rich.table import Table

    table = Table("bucket", "objects", "size", "newest backup")
    for item in listing.buckets:
        table.add_row(
            item.name + ("" if item.application else " (other)"),
            str(item.object_count),
            _size(item.size_bytes),
            item.last_backup or "-",
        )
    out.print(table)


@objects_app.command("verify")
def verify(name: NameArg, json_output: JsonOpt = False) -> None:
    """Read every copy of a backup in full and check each object's sha256."""
    from autograph.dr.models import validate_name

    validate_name(name)
    with progress_bar() as progress:
        entry = _manager().verify(name, progress=progress)
    if json_output:
        emit_json(entry)
        return
    for check, outcome in entry.verification.checks.items():
        out.print(f"  {check}: {outcome}")
    out.print(f"{name}: verification passed")


@objects_app.command("restore")
def restore(
    name: NameArg,
    target_bucket: Annotated[
        str | None,
        typer.Option("--target-bucket", help="default: the bucket the backup was taken from"),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="replace existing keys (default: skip and report them)")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="concurrent uploads")] = 16,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Restore a bucket backup (checksum checked before anything is written)."""
    from autograph.dr.models import validate_name

    manager = _manager()
    manager.workers = workers
    validate_name(name)
    if target_bucket is not None:
        manager.check_target(target_bucket)
    if overwrite and not yes:
        typer.confirm(
            f"restore {name}, replacing existing objects in {target_bucket or 'its bucket'}?",
            abort=True,
        )
    with bars() as (progress, counts):
        result = manager.restore(
            name, target_bucket, overwrite=overwrite, progress=progress, counts=counts
        )
    if json_output:
        emit_json(result)
    else:
        for step in result.steps:
            out.print(f"  {step.name}: {step.duration_seconds:.1f}s  {step.detail}")
        out.print(
            f"restored {name} into {result.target_bucket} in "
            f"{result.duration_seconds:.1f}s: {result.restored} restored, "
            f"{result.skipped} skipped, {result.failed} failed"
        )
        for key, why in list(result.failed_keys.items())[:20]:
            console.print(f"[red]failed[/] {key!r}: {why}")
    if result.failed:
        raise AutographError(f"{result.failed} object(s) could not be restored")


@objects_app.command("delete")
def delete(name: NameArg, yes: YesOpt = False, json_output: JsonOpt = False) -> None:
    """Delete a bucket backup from both tiers."""
    if not yes:
        typer.confirm(f"delete bucket backup {name} from every tier?", abort=True)
    show_deleted(name, _manager().delete(name), json_output)


@objects_app.command("sync")
def sync(json_output: JsonOpt = False) -> None:
    """Upload local bucket backups missing from S3; remove interrupted ones."""
    with progress_bar() as progress:
        report = _manager().sync(progress=progress)
    show_sync(report, json_output)


def register(backup_app: typer.Typer) -> None:
    """Add ``backup objects`` to the ``backup`` group."""
    backup_app.add_typer(objects_app, name="objects")
