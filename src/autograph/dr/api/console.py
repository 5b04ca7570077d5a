"""What the DR console reads beyond the per-kind routes: every backup of every kind in one
list, pin/unpin, the WAL stream, the drill history with its reports, the prune dry run.

Included by :mod:`autograph.dr.api` under ``/api/admin`` (admin token or session required).
Like the other listing routes these read only the backup storage, never PostgreSQL or Redis.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from autograph.clock import utc_now
from autograph.dr.api.snapshots import get_snapshot_manager
from autograph.dr.api.support import cached, required_name
from autograph.dr.catalog import Catalog, open_catalog
from autograph.dr.drill.report import HistoryEntry, load_history
from autograph.dr.models import BackupEntry, Kind
from autograph.dr.retention.prune import PRUNED_KINDS, PruneReport, pin, prune
from autograph.errors import NotFound
from autograph.services.common.deps import ResourcesDep

router = APIRouter(tags=["admin: console"])
CATALOG_KINDS: tuple[Kind, ...] = ("database", "bucket", "basebackup")
REPORT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                 "frame-ancestors 'none'; base-uri 'none'")


class BackupRow(BaseModel):
    """One backup of any kind, as the console's single list shows it."""

    name: str
    kind: str = Field(description="database, bucket, basebackup or snapshot")
    source: str
    created_at: str
    size_bytes: int | None = Field(default=None, description="None: not read (snapshots)")
    object_count: int | None = None
    verification: str
    verified_at: str | None = None
    tags: list[str] = Field(default_factory=list)
    locations: list[str]


class AllBackups(BaseModel):
    """Every kind's backups, newest first; a kind or tier that could not be read is named."""

    backups: list[BackupRow]
    unreachable: dict[str, str] = Field(default_factory=dict)


def _catalog(request: Request, resources: Any, kind: Kind) -> Catalog:
    return cached(request, f"catalog:{kind}",
                  lambda: open_catalog(resources.settings, resources.creds, kind))


def _row(entry: BackupEntry) -> BackupRow:
    return BackupRow(
        name=entry.name, kind=entry.kind, source=entry.source,
        created_at=entry.created_at.isoformat(), size_bytes=entry.size_bytes,
        object_count=entry.object_count, verification=entry.verification.status,
        verified_at=entry.verification.at.isoformat() if entry.verification.at else None,
        tags=entry.tags, locations=list(entry.locations))


@router.get("/backups", response_model=AllBackups)
def all_backups(request: Request, resources: ResourcesDep) -> AllBackups:
    """Dumps, bucket archives, base backups and bucket snapshots in one list, newest first."""
    rows: list[BackupRow] = []
    unreachable: dict[str, str] = {}
    for kind in CATALOG_KINDS:
        try:
            listing = _catalog(request, resources, kind).list()
        except Exception as exc:  # one kind down must not hide the others
            unreachable[kind] = getattr(exc, "message", type(exc).__name__)
            continue
        rows += [_row(entry) for entry in listing.backups]
        unreachable.update({f"{kind}/{tier}": why for tier, why in listing.unreachable.items()})
    try:
        snaps = get_snapshot_manager(request, resources).list()
    except Exception as exc:
        unreachable["snapshot"] = getattr(exc, "message", type(exc).__name__)
    else:
        rows += [BackupRow(name=s["name"], kind="snapshot", source=s["bucket"],
                           created_at=s["started_at"], verification="not_verified",
                           locations=s["locations"]) for s in snaps["snapshots"]]
        unreachable.update({f"snapshot/{t}": why for t, why in snaps["unreachable"].items()})
    rows.sort(key=lambda r: (r.created_at, r.name), reverse=True)
    return AllBackups(backups=rows, unreachable=unreachable)


@router.post("/backup/pin", response_model=BackupEntry)
def pin_backup(request: Request, resources: ResourcesDep,
               backup_name: Annotated[str | None, Query(description="backup name")] = None,
               pinned: bool = True) -> BackupEntry:
    """Pin a backup (never pruned) or, with ``pinned=false``, unpin it."""
    name = required_name(backup_name)
    return pin([_catalog(request, resources, k) for k in CATALOG_KINDS], name, pinned=pinned)


@router.get("/prune/plan", response_model=PruneReport)
def prune_plan(request: Request, resources: ResourcesDep) -> PruneReport:
    """What retention would remove now, and why (a dry run: nothing changes)."""
    return prune([_catalog(request, resources, k) for k in PRUNED_KINDS], utc_now(),
                 dry_run=True)


@router.get("/wal")
def wal_status(resources: ResourcesDep) -> dict[str, Any]:
    """The streamed WAL per cluster: segments, bytes, newest segment and its age."""
    from autograph.dr.postgres.wal_files import wal_summary

    return {"clusters": wal_summary(resources.settings)}


class DrillRow(HistoryEntry):
    """A drill of the history, with its position (the report's id) and whether it has one."""

    id: int
    has_report: bool


def _report_file(dr_dir: Path, entry: HistoryEntry) -> Path | None:
    """The drill's report.html when it lies inside ``dr_dir/reports`` (never elsewhere)."""
    root = (dr_dir / "reports").resolve()
    path = (Path(entry.report) / "report.html").resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


@router.get("/drills", response_model=list[DrillRow])
def drills(resources: ResourcesDep) -> list[DrillRow]:
    """The drill history, newest first, with RTO and RPO."""
    dr_dir = resources.settings.dr_dir
    history = load_history(dr_dir)
    rows = [DrillRow(**e.model_dump(), id=i, has_report=_report_file(dr_dir, e) is not None)
            for i, e in enumerate(history)]
    return list(reversed(rows))


@router.get("/drills/{drill_id}/report", response_class=HTMLResponse)
def drill_report(resources: ResourcesDep,
                 drill_id: Annotated[int, PathParam(ge=0, le=1_000_000)]) -> HTMLResponse:
    """A drill's HTML report (opened from the console's drill table)."""
    dr_dir = resources.settings.dr_dir
    history = load_history(dr_dir)
    path = _report_file(dr_dir, history[drill_id]) if drill_id < len(history) else None
    if path is None:
        raise NotFound(f"no report for drill {drill_id}")
    return HTMLResponse(_inline_screenshots(path.read_text(encoding="utf-8"), path.parent),
                        headers={"Content-Security-Policy": REPORT_POLICY,
                                 "X-Content-Type-Options": "nosniff"})


_SHOT_SRC = re.compile(r"<img src='([a-z0-9-]+\.png)'")


def _inline_screenshots(page: str, folder: Path) -> str:
    """The report's screenshots (plain ``*.png`` names beside it) as data: URIs, so the
    console's copy shows them under its CSP (``img-src data:``); a missing file stays a name."""

    def inline(match: re.Match[str]) -> str:
        try:
            data = (folder / match.group(1)).read_bytes()
        except OSError:
            return match.group(0)
        return f"<img src='data:image/png;base64,{base64.b64encode(data).decode()}'"

    return _SHOT_SRC.sub(inline, page)
