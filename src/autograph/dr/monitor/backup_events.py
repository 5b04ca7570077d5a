"""Alerts from backup events (journaled by every process that backs up or verifies):
``backup_failed``, ``backup_small`` (under a fraction of the median of the previous 7 of the
same source) and ``verification_failed``, each resolved by the event that answers it."""

from __future__ import annotations

import logging
import re
import statistics
from datetime import timedelta

from pydantic import JsonValue

from autograph.clock import isoformat
from autograph.dr.models import BackupEntry
from autograph.dr.monitor.state import MonitorState
from autograph.dr.monitor.watched import subject
from autograph.dr.ops import journal
from autograph.dr.ops.hooks import BackupEvent
from autograph.errors import AutographError

log = logging.getLogger("autograph.dr.monitor.monitor")

SMALL_WINDOW = 7
STALE_EVENT = timedelta(hours=1)
"""Journaled events older than this when read (no monitor ran meanwhile) are dropped."""
_BUCKET_NAME = re.compile(r"(?:scheduled|manual)_(.+)_\d{8}_\d{6}(?:_\d+)?")


class BackupEventChecks(MonitorState):
    """Reads the journal and turns each backup event into a fire or a resolve."""

    def process_journal(self) -> None:
        """Handle every event other processes (and this one) journaled since the last pass."""
        if self.journal_path is None:
            return
        now = self.clock()
        for event in journal.take(self.journal_path):
            if now - event.at > STALE_EVENT:
                log.info("stale backup event dropped: %s %s at %s", event.event, event.kind,
                         isoformat(event.at))
                continue
            self.handle(event)

    def _source(self, event: BackupEvent, entry: BackupEntry | None) -> str | None:
        for key in ("source", "bucket"):
            if isinstance(event.data.get(key), str):
                return str(event.data[key])
        if entry is not None:
            return entry.source
        match = _BUCKET_NAME.fullmatch(event.name or "")
        return match.group(1) if event.kind == "bucket" and match else None

    def _entry(self, kind: str, name: str | None) -> BackupEntry | None:
        catalog = next((c for k, c in self.catalogs.items() if k == kind), None)
        if catalog is None or not name:
            return None
        try:
            return catalog.get(name)
        except AutographError:
            return None

    def handle(self, event: BackupEvent) -> None:
        """Fire or resolve what one backup event means."""
        committed = event.event in ("backup_succeeded", "backup_small")
        entry = self._entry(event.kind, event.name) if committed else None
        source = self._source(event, entry)
        about = subject(event.kind, source)
        details: dict[str, JsonValue] = {"kind": event.kind, "source": source,
                                         "backup": event.name, "at": isoformat(event.at)}
        if event.event == "backup_failed":
            what = f"{event.kind} backup" + (f" {event.name}" if event.name else "")
            self.fire(f"backup_failed:{about}", "backup_failed", "critical",
                      f"{what} failed: {event.detail}", **details, error=event.detail)
        elif event.event == "backup_succeeded":
            self.alerts.resolve(f"backup_failed:{about}")
            if about != event.kind:
                self.alerts.resolve(f"backup_failed:{event.kind}")
            if event.kind == "snapshot" and event.data.get("shrunk") is False:
                self.alerts.resolve(f"backup_small:{about}")  # the bucket is back
            if entry is not None:
                self.check_size(entry)
                if entry.verification.status == "passed":
                    self.alerts.resolve(f"verification_failed:{event.kind}")
        elif event.event == "backup_small":
            self.fire(f"backup_small:{about}", "backup_small", "warning",
                      f"{event.kind} backup {event.name} is unusually small: {event.detail}",
                      **details)
        elif event.event == "verification_failed":
            self.fire(f"verification_failed:{event.kind}", "verification_failed", "critical",
                      f"verification of {event.kind} backup {event.name} failed: "
                      f"{event.detail}", **details)
        elif event.event == "verification_passed":
            self.alerts.resolve(f"verification_failed:{event.kind}")

    def check_size(self, entry: BackupEntry) -> None:
        """Fire ``backup_small`` if ``entry`` is under the configured fraction of the median
        size of the previous (up to 7) backups of its source; resolve it otherwise."""
        if entry.kind not in self.catalogs:
            return
        previous = [b.size_bytes for b in self.listing(entry.kind)
                    if b.source == entry.source and b.name != entry.name
                    and b.created_at <= entry.created_at][:SMALL_WINDOW]
        key = f"backup_small:{subject(entry.kind, entry.source)}"
        if not previous:
            return
        median = statistics.median(previous)
        fraction = self.settings.small_backup_fraction
        if entry.size_bytes < fraction * median:
            self.fire(key, "backup_small", "warning",
                      f"{entry.kind} backup {entry.name} is unusually small: "
                      f"{entry.size_bytes} bytes, under {fraction:.0%} of the median of the "
                      f"previous {len(previous)} ({median:.0f} bytes)",
                      kind=entry.kind, source=entry.source, backup=entry.name,
                      size_bytes=entry.size_bytes, median_bytes=median)
        else:
            self.alerts.resolve(key)
