"""The audit log of admin actions: who did what, when, and how it ended (``dr/audit.jsonl``).

One JSON line per action, appended under a lock and fsynced, so several gateway processes can
write it and a crash loses at most the line being written. A background job gets two lines: its
acceptance (202, the job id) and its end (succeeded / failed), both naming the same actor.
"""

from __future__ import annotations

import fcntl
import os
from collections import deque
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

FILE_NAME = "audit.jsonl"


class AuditEntry(BaseModel):
    """One admin action."""

    at: datetime
    actor: str = Field(description="'admin-api-key', 'admin session <id> …' or a user's e-mail")
    action: str = Field(description="e.g. 'POST /api/admin/backup/create' or 'job backup.create'")
    target: str = Field(default="", description="the query string or the job id")
    status: int = Field(description="the HTTP status (or the job's error status; 200 = done)")
    result: str = Field(description="'ok', 'accepted', 'failed', 'denied'")
    detail: str = ""


def append(dr_dir: Path, entry: AuditEntry) -> None:
    """Add one line (locked, fsynced). Raises OSError when the folder is not writable."""
    dr_dir.mkdir(parents=True, exist_ok=True)
    with open(dr_dir / FILE_NAME, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(entry.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read(dr_dir: Path, limit: int = 200) -> list[AuditEntry]:
    """The newest ``limit`` entries, newest first (unreadable lines skipped)."""
    path = dr_dir / FILE_NAME
    if not path.exists():
        return []
    tail: deque[str] = deque(maxlen=limit)
    with open(path, encoding="utf-8") as handle:
        tail.extend(handle)
    entries = []
    for line in reversed(tail):
        try:
            entries.append(AuditEntry.model_validate_json(line))
        except ValueError:
            continue
    return entries
