"""``autograph backup snapshots``: incremental bucket snapshots (SPEC §7).

``create [BUCKET]`` (default: every application bucket) · ``list`` · ``show`` · ``verify`` ·
``restore`` · ``prune``. The gateway takes them every ``AUTOGRAPH_SNAPSHOT_INTERVAL_SECONDS``;
these commands are for an operator, and work with the gateway down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from autograph.cli.backup import JsonOpt, YesOpt, _size, out
from autograph.cli.output import console, emit_json
from autograph.clock import isoformat
from autograph.errors import AutographError, InvalidInput, NotFound

if TYPE_CHECKING:  # the DR core is imported inside the commands: `--help` needs none of it
    from autograph.dr.buckets.snapshots.manager import SnapshotManager

snapshots_app = typer.Typer(
    help="Incremental bucket snapshots (only changed objects stored; each restores the "
    "bucket's full state at its time).", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="snapshot name (see `autograph backup snapshots "
                                              "list`)")]


def _manager() -> SnapshotManager:
    from autograph.config import load_settings
    from autograph.dr.buckets.snapshots.manager import SnapshotManager
    from autograph.secrets import load_credentials

    settings = load_settings()
    return SnapshotManager(settings, load_credentials(settings))


def _status(text: str, _fraction: float | None = None) -> None:
    console.print(f"[dim]{text}[/]")


@snapshots_app.command("create")
def create(bucket: Annotated[str | None, typer.Argument(
               help="an application bucket (default: all of them)")] = None,
           accept_shrink: Annotated[bool, typer.Option(
               help="the bucket shrank on purpose: do not flag this snapshot as a mass "
               "deletion, start a new baseline")] = False,
           json_output: JsonOpt = False) -> None:
    """Snapshot one bucket or every application bucket now."""
    manager = _manager()
    results = []
    for name in ([bucket] if bucket else manager.settings.app_buckets):
        results.append(manager.take(name, accept_shrink=accept_shrink,
                                    progress=_status).as_dict())
    if json_output:
        emit_json(results)
        return
    for r in results:
        out.print(f"{r['name']}: {r['objects']} objects ({_size(r['size'])}), {r['new_blobs']} "
                  f"new ({_size(r['new_bytes'])}), {r['reused']} unchanged, "
                  f"{r['duration_seconds']:.1f}s, in {', '.join(r['tiers'])}"
                  + (f"; [red]S3 copy failed[/]: {r['s3_error']}" if r["s3_error"] else "")
                  + (f"; [yellow]flagged as a mass deletion[/]: {r['shrunk']} (recovery passes"
                     " over it; --accept-shrink if it was meant)" if r["shrunk"] else ""))


@snapshots_app.command("list")
def list_snapshots(bucket: Annotated[str | None, typer.Option(help="only this bucket")] = None,
                   limit: Annotated[int, typer.Option(min=1, help="newest N")] = 20,
                   json_output: JsonOpt = False) -> None:
    """Snapshots, newest first, with the tiers holding them."""
    listing = _manager().list(bucket)
    rows = listing["snapshots"][:limit]
    if json_output:
        emit_json({**listing, "snapshots": rows})
        return
    from rich.table import Column, Table

    table = Table(Column("name", no_wrap=True, overflow="fold"), "taken (UTC)", "copies")
    for row in rows:
        taken = row["started_at"].replace("T", " ")[:19]  # the name carries the bucket
        table.add_row(row["name"], taken, ", ".join(row["locations"]))
    out.print(table)
    for tier, why in listing["unreachable"].items():
        console.print(f"[yellow]{tier} tier unreachable[/]: {why}")


@snapshots_app.command("show")
def show(name: NameArg, json_output: JsonOpt = False) -> None:
    """One snapshot's summary (objects, size, what was new)."""
    summary = _manager().load(name).summary()
    if json_output:
        emit_json(summary)
    else:
        for key, value in summary.items():
            out.print(f"{key}: {value}")


@snapshots_app.command("verify")
def verify(name: NameArg, deep: Annotated[bool, typer.Option(
               help="hash every local blob too")] = False, json_output: JsonOpt = False) -> None:
    """Check every blob of a snapshot is in each tier (exit 1 unless restorable)."""
    result = _manager().verify(name, deep=deep)
    if json_output:
        emit_json(result)
    else:
        out.print(f"{name}: {result['status']} ({result['objects']} objects, "
                  f"{result['blobs']} blobs)")
        for tier, found in result["tiers"].items():
            out.print(f"  {tier}: {found}")
    if not result["restorable"]:
        raise AutographError(f"snapshot {name} cannot be restored: blobs are missing")


@snapshots_app.command("restore")
def restore(
    name: Annotated[str | None, typer.Argument(help="snapshot name")] = None,
    bucket: Annotated[str | None, typer.Option(
        help="instead of a name: the newest snapshot of this bucket")] = None,
    at: Annotated[datetime | None, typer.Option(
        "--at", help="with --bucket: the newest snapshot taken at or before this UTC time")]
        = None,
    target_bucket: Annotated[str | None, typer.Option(
        "--target-bucket", help="default: the snapshot's bucket")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="replace existing keys (default: skip and report them)")] = False,
    yes: YesOpt = False, json_output: JsonOpt = False) -> None:
    """Put a bucket back as a snapshot recorded it (every blob located first)."""
    manager = _manager()
    if (name is None) == (bucket is None):
        raise InvalidInput("name a snapshot, or give --bucket (with --at for a past state)")
    if name is None:
        assert bucket is not None
        moment = at.replace(tzinfo=at.tzinfo or UTC) if at else None
        name = manager.latest(bucket, moment)
        if name is None:
            raise NotFound(f"no snapshot of {bucket}"
                           + (f" taken by {isoformat(moment)}" if moment else ""))
    if overwrite and not yes:
        typer.confirm(f"restore {name}, replacing existing objects?", abort=True)
    result = manager.restore(name, target_bucket=target_bucket, overwrite=overwrite,
                             progress=_status)
    if json_output:
        emit_json(result.as_dict())
        return
    out.print(f"restored {name} into {result.target_bucket} in {result.duration_seconds:.1f}s: "
              f"{result.restored} restored, {result.skipped} skipped, {len(result.failed)} "
              f"failed; {result.extra} keys in the bucket are not in the snapshot (left as found)")


@snapshots_app.command("prune")
def prune(dry_run: Annotated[bool, typer.Option(help="only say what would go")] = False,
          json_output: JsonOpt = False) -> None:
    """Apply the snapshot retention (all of the last hour, hourly for 48 h, daily for 14 days by
    default; the newest always) and remove the blobs no kept snapshot names."""
    report = _manager().prune(dry_run=dry_run)
    if json_output:  # the retention report, plus the keys this command has always printed
        emit_json({**report.model_dump(mode="json"), "removed": report.removed,
                   "kept": {d.name: "; ".join(d.reasons) for d in report.decisions if d.keep},
                   "errors": report.errors})
        return
    for item in sorted(report.decisions, key=lambda d: d.name):
        why = f"  ({'; '.join(item.reasons)})" if item.keep else ""
        out.print(f"{'keep  ' if item.keep else 'remove'} {item.name}{why}")
    if not dry_run:
        out.print(f"blobs removed: {report.blobs_removed}")
    for error in report.errors:
        console.print(f"[red]error[/] {error}")
    if report.errors:
        raise AutographError(f"{len(report.errors)} pruning error(s)")


def register(backup_app: typer.Typer) -> None:
    """Add ``backup snapshots`` to the ``backup`` group."""
    backup_app.add_typer(snapshots_app, name="snapshots")
