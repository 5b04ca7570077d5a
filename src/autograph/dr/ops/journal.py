"""The event journal: backup events from every process, for the one process that alerts.

The hook bus (:mod:`autograph.dr.ops.hooks`) is in-process. Gateway workers, a second gateway
and the CLI all run backups, while one monitor (the leader, :mod:`autograph.dr.daemon`) owns the
alert state. Each process appends its events to ``HOME/dr/events.jsonl`` (one JSON line, one
``O_APPEND`` write under a short ``flock``: a local file, so recording never delays a backup on a
slow network); the leader takes what is there and empties the file under the same lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from autograph.clock import isoformat
from autograph.dr.ops.hooks import BackupEvent, Subscriber

log = logging.getLogger("autograph.dr.ops.journal")

JOURNAL_NAME = "events.jsonl"


def journal_path(dr_dir: Path) -> Path:
    """Where the journal lives under ``HOME/dr``."""
    return dr_dir / JOURNAL_NAME


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def encode(event: BackupEvent) -> str:
    """One JSON line (no newline) for ``event``."""
    record = {"event": event.event, "kind": event.kind, "name": event.name,
              "detail": event.detail, "at": isoformat(event.at), "data": event.data}
    return json.dumps(record, default=str, separators=(",", ":"))


def decode(line: str) -> BackupEvent:
    """The event of one journal line. Raises ValueError (or KeyError) if it is malformed."""
    record: dict[str, Any] = json.loads(line)
    return BackupEvent(event=record["event"], kind=str(record["kind"]), name=record.get("name"),
                       detail=str(record.get("detail", "")),
                       at=datetime.fromisoformat(str(record["at"]).replace("Z", "+00:00")),
                       data=dict(record.get("data") or {}))


def append(path: Path, event: BackupEvent) -> None:
    """Append ``event``; an I/O failure is logged, never raised (the backup goes on)."""
    data = (encode(event) + "\n").encode()
    try:
        with _locked(path) as fd:
            os.write(fd, data)
    except OSError as exc:
        log.warning("backup event not journaled: %s", exc.strerror)


def take(path: Path) -> list[BackupEvent]:
    """Return every journaled event, oldest first, and empty the journal (malformed lines are
    logged and dropped)."""
    if not path.exists():
        return []
    with _locked(path) as fd:
        with open(fd, "rb", closefd=False) as handle:
            handle.seek(0)
            raw = handle.read()
        os.ftruncate(fd, 0)
    events: list[BackupEvent] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            events.append(decode(line))
        except (ValueError, KeyError, TypeError):
            log.warning("malformed journal line dropped")
    return events


def recorder(path: Path) -> Subscriber:
    """A hook subscriber that journals every event it is given."""

    def record(event: BackupEvent) -> None:
        append(path, event)

    return record
