"""The ``dangling_references`` alert: rows that name an object missing from its bucket.

A diagram version whose canvas is gone, an upload without its bytes: the service answers 503
for that diagram, and only a restore of the objects brings it back (SPEC §7 calls such a row
corruption). The scan is the recovery's own (:func:`~autograph.dr.recovery.consistent.
dangling_rows`: the buckets listed, then the rows read); each row it finds is confirmed again
(:func:`~autograph.dr.recovery.integrity.still_dangling`: the row re-read, the object asked
for), so a write or a delete racing the listing never fires it.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from autograph.config import Settings
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.recovery.consistent import SAMPLE, dangling_rows
from autograph.dr.recovery.integrity import OBJECT_REFERENCES, still_dangling
from autograph.secrets import Credentials

KEY = "dangling_references"


def check(settings: Settings, creds: Credentials, s3: Any, alerts: AlertDispatcher) -> None:
    """Fire ``dangling_references`` (critical) naming the tables, counts and a sample of the
    missing objects while any row dangles; resolve it when none does. Raises DependencyDown
    when PostgreSQL is unreachable (the monitor logs it; ``database_unreachable`` covers it)."""
    found = dangling_rows(settings, creds, s3)
    confirmed = still_dangling(settings, creds, s3, found) if found else {}
    if not confirmed:
        alerts.resolve(KEY)
        return
    buckets = {table: bucket for table, _column, bucket in OBJECT_REFERENCES}
    sample = [f"{buckets[table]}/{key}" for table in confirmed for key in found[table]][:SAMPLE]
    total = sum(confirmed.values())
    details: dict[str, JsonValue] = {"tables": {t: n for t, n in confirmed.items()},
                                     "sample": [*sample]}
    alerts.fire(KEY, KEY, "critical",
                f"{total} rows name objects missing from their bucket (data corruption; put "
                "the objects back: `autograph dr recover --scenario objects`): "
                + ", ".join(f"{count} in {table}" for table, count in confirmed.items())
                + f"; e.g. {', '.join(sample)}",
                details)
