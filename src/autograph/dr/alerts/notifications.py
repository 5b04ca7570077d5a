"""The notifications log (``HOME/dr/notifications.jsonl``): every notice the dispatcher handed
to a channel, one JSON line each, read back as the timeline a recovery report keeps."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from autograph.dr.alerts.models import Notification

FILE_NAME = "notifications.jsonl"
MAX_BYTES = 4 * 1024 * 1024
"""Past this size the log is moved to ``notifications.jsonl.1`` (one old file kept)."""

logger = logging.getLogger(__name__)


def log_path(dr_dir: Path) -> Path:
    """Where the gateway's dispatcher appends its notices."""
    return dr_dir / FILE_NAME


def append(path: Path, record: Notification) -> None:
    """Append one record, rotating the file past :data:`MAX_BYTES`. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > MAX_BYTES:
        path.replace(path.with_name(path.name + ".1"))
    with open(path, "a", encoding="utf-8") as out:
        out.write(record.model_dump_json() + "\n")


def between(path: Path, start: datetime, end: datetime) -> list[Notification]:
    """The notices sent from ``start`` to ``end`` (inclusive), oldest first, from the log and
    its rotated file; unreadable lines are skipped (a crash can cut the last one)."""
    found: list[Notification] = []
    for file in (path.with_name(path.name + ".1"), path):
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("notification log %s unreadable: %s", file, exc)
            continue
        for line in lines:
            try:
                record = Notification.model_validate_json(line)
            except ValidationError:
                continue
            if start <= record.at <= end:
                found.append(record)
    found.sort(key=lambda n: n.at)
    return found
