"""A proof: one restore test of one backup (or one drill), and the history of them.

The history (``HOME/dr/proofs.jsonl``, one JSON object a line, appended and fsynced) is what
the schedule, the alerts, ``dr status`` and ``/metrics`` read: it also holds the attempts that
never reached a manifest (a refused start for lack of disk, a drill that crashed), and snapshot
proofs (a snapshot index has no manifest to write into).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

ProofKind = Literal["database", "basebackup", "bucket", "snapshot", "drill"]
PROVEN_KINDS: tuple[ProofKind, ...] = ("database", "basebackup", "bucket", "snapshot")
"""The backup kinds deep-verified on a schedule (the drill is scheduled beside them)."""
ProofStatus = Literal["passed", "failed", "refused"]
HISTORY_NAME = "proofs.jsonl"
METHOD = "restore"


class ProofRecord(BaseModel):
    """One deep verification (or drill) and its evidence."""

    kind: ProofKind
    status: ProofStatus
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    method: str = METHOD
    backups: list[str] = Field(default_factory=list, description="what was restored")
    compared: str = Field(default="", description="what was compared, with the figures")
    detail: str | None = Field(default=None, description="why it failed or was refused")
    evidence: str | None = Field(default=None, description="manifest name or report path")
    rto_seconds: float | None = None
    rpo_seconds: float | None = None


def history_path(dr_dir: Path) -> Path:
    """``HOME/dr/proofs.jsonl``."""
    return dr_dir / HISTORY_NAME


def append(dr_dir: Path, record: ProofRecord) -> None:
    """Append one record (fsynced: the schedule of every gateway reads it)."""
    dr_dir.mkdir(parents=True, exist_ok=True)
    with open(history_path(dr_dir), "a", encoding="utf-8") as handle:
        handle.write(record.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load(dr_dir: Path) -> list[ProofRecord]:
    """Every record, oldest first (unreadable lines skipped)."""
    try:
        lines = history_path(dr_dir).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(ProofRecord.model_validate_json(line))
        except (ValidationError, ValueError):
            continue
    return sorted(records, key=lambda r: r.finished_at)


def last_of(records: list[ProofRecord], kind: ProofKind,
            status: ProofStatus | None = None) -> ProofRecord | None:
    """The newest record of ``kind`` (with ``status`` when given)."""
    mine = [r for r in records if r.kind == kind and (status is None or r.status == status)]
    return mine[-1] if mine else None
