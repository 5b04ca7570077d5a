"""What every monitor check shares: the settings, the alert dispatcher, the catalogs (listed once
per pass), the clock, and the memory that spans passes (failure counts, last periodic checks).

The checks live in sibling modules, one family each, as mixins over this state;
:class:`~autograph.dr.monitor.monitor.Monitor` puts them together and runs a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.models import Severity
from autograph.dr.catalog import Catalog
from autograph.dr.models import BackupEntry, Kind
from autograph.dr.monitor.watched import Expected, Watched
from autograph.secrets import Credentials


class MonitorState:
    """The monitor's inputs and memory; :meth:`fire` and :meth:`listing` for the checks."""

    def __init__(self, settings: Settings, dispatcher: AlertDispatcher,
                 catalogs: Mapping[Kind, Catalog], *, expected: Sequence[Expected] = (),
                 watched: Sequence[Watched] = (), clock: Clock = utc_now,
                 journal_path: Path | None = None, s3_client: Callable[[], Any] | None = None,
                 scheduled_only: bool = True, creds: Credentials | None = None) -> None:
        self.settings = settings
        self.alerts = dispatcher
        self.catalogs = dict(catalogs)
        self.expected = list(expected)
        self.watched = list(watched)
        self.clock = clock
        self.journal_path = journal_path
        self.s3_client = s3_client
        self.scheduled_only = scheduled_only
        self.creds = creds
        self.started_at = clock()
        self._failures: dict[str, int] = {}
        self._unhealthy_since: dict[str, datetime] = {}
        self._quotas_checked: datetime | None = None
        self._references_checked: datetime | None = None
        self._listings: dict[Kind, list[BackupEntry]] | None = None

    def fire(self, key: str, rule: str, severity: Severity, message: str,
             **details: JsonValue) -> None:
        """Fire ``key`` (a no-op while it is firing)."""
        self.alerts.fire(key, rule, severity, message, details)

    def listing(self, kind: Kind) -> list[BackupEntry]:
        """The backups of ``kind``, newest first (read once per pass)."""
        if self._listings is not None and kind in self._listings:
            return self._listings[kind]
        backups = self.catalogs[kind].list().backups
        if self._listings is not None:
            self._listings[kind] = backups
        return backups
