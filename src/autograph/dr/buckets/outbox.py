"""The outbox replicator: objects reach every backup tier within seconds of their write.

The services record each object write in ``object_outbox`` in the transaction that inserts
the row referencing it (:mod:`autograph.services.diagrams.outbox`). A pass reads the rows not
yet shipped to every tier of the snapshot store, copies each object's bytes into the tiers'
blob stores under the name a snapshot would give them (``<sha256>`` or ``<sha256>.z``, so a
later snapshot finds them already there and only records the listing), and adds the tiers to
the row's ``shipped``. The tiers are :meth:`SnapshotStore.tiers`: a tier added there is
replicated to with no change here.

Killed mid-pass: rows not marked are read again; a blob already in a tier (same size) is not
sent again, so nothing is shipped twice and nothing is missed. A tier that fails is skipped for
the rest of the pass (its rows stay pending, its protected point stays where it was, the
monitor alerts once it is older than ``outbox_alert_seconds``); the next passes catch up.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.buckets.snapshots.blobs import squeeze
from autograph.dr.buckets.snapshots.store import COMPRESSED_SUFFIX, SnapshotStore, TierStores
from autograph.dr.buckets.watermark import (
    OutboxState,
    read_state,
    write_state,
    write_watermark,
)
from autograph.errors import AutographError, DependencyDown, NotFound
from autograph.s3.bulk import S3Client
from autograph.s3.response import ObjectMissing
from autograph.s3.sigv4 import S3Endpoint
from autograph.secrets import Credentials

log = logging.getLogger("autograph.dr.outbox")

LOCK_KIND = "outbox"
BATCH = 200
WORKERS = 8  # objects copied at once (each is a GET and a PUT per tier: latency-bound)
VISIBILITY_MARGIN = timedelta(seconds=1)
PRUNE_AFTER = timedelta(hours=2)
Shipped = Callable[[str, str], None]
"""Called with (tier, blob) for every blob actually sent."""

_PENDING = """
    SELECT id, bucket, object_key, sha256, content_type, metadata, shipped,
           statement_timestamp()
    FROM object_outbox WHERE NOT (shipped @> %s::text[]) AND id <> ALL(%s::bigint[])
    ORDER BY id LIMIT %s
"""


@dataclass
class PassResult:
    """What one pass did."""

    rows: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    gone: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    protected: dict[str, datetime] = field(default_factory=dict)
    pending: int = 0
    oldest_pending_at: datetime | None = None


def pack(data: bytes) -> tuple[str, bytes]:
    """The blob name and stored bytes a snapshot would use for ``data``."""
    sha = hashlib.sha256(data).hexdigest()
    if len(data) >= 256:
        packed = squeeze(data)  # as the snapshots: the same bytes get the same blob name
        if len(packed) <= 0.9 * len(data):
            return sha + COMPRESSED_SUFFIX, packed
    return sha, data


class Replicator:
    """Drains the outbox into every tier of the snapshot store."""

    def __init__(self, settings: Settings, creds: Credentials, *,
                 store: SnapshotStore | None = None, source: S3Client | None = None,
                 clock: Clock = utc_now, on_ship: Shipped | None = None) -> None:
        self.settings, self.creds, self.clock = settings, creds, clock
        self.store = store or SnapshotStore(settings, creds)
        self.source = source or S3Client(S3Endpoint.application(settings, creds),
                                         timeout=30.0, retries=1)
        self.on_ship = on_ship

    def _connect(self) -> psycopg.Connection[Any]:
        s = self.settings
        try:
            return psycopg.connect(host=s.host, port=s.pg_port, user=s.pg_user,
                                   password=self.creds.pg_password, dbname=s.pg_database,
                                   connect_timeout=5, autocommit=True,
                                   application_name="autograph-outbox")
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()
            raise DependencyDown(f"PostgreSQL: {first[0] if first else 'unreachable'}") \
                from None

    def run_pass(self) -> PassResult:
        """Ship everything pending, mark it, move each clean tier's protected point, write the
        state file. Raises DependencyDown when PostgreSQL is unreachable; a failing tier or
        object is recorded in the result, not raised."""
        tiers = self.store.tiers()
        result = PassResult()
        with self._connect() as conn:
            if not _has_outbox(conn):
                return result
            looked_at = self._drain(conn, tiers, result)
            for tier in tiers:
                if tier.name in result.failed or looked_at is None:
                    continue
                try:
                    write_watermark(tier, looked_at - VISIBILITY_MARGIN)
                    result.protected[tier.name] = looked_at - VISIBILITY_MARGIN
                except AutographError as exc:
                    result.failed[tier.name] = exc.message
            self._count_pending(conn, [t.name for t in tiers], result)
            conn.execute("DELETE FROM object_outbox WHERE shipped @> %s::text[] AND "
                         "written_at < now() - %s", ([t.name for t in tiers], PRUNE_AFTER))
        self._save_state(result)
        return result

    def _drain(self, conn: psycopg.Connection[Any], tiers: list[TierStores],
               result: PassResult) -> datetime | None:
        """Ship batches until none is left for the tiers still up; the database time of the
        last (empty-handed) look, or None when every tier failed or a row could not be
        shipped."""
        skipped: list[int] = []  # rows that failed this pass (read again next pass)
        while True:
            up = [t for t in tiers if t.name not in result.failed]
            if not up:
                return None
            rows = conn.execute(_PENDING, ([t.name for t in up], skipped, BATCH)).fetchall()
            if not rows:
                if skipped:  # an object could not be shipped: the point cannot move
                    return None
                stamp = conn.execute("SELECT statement_timestamp()").fetchone()
                return stamp[0] if stamp else None
            with ThreadPoolExecutor(WORKERS, thread_name_prefix="outbox") as pool:
                outcomes = list(pool.map(self._ship_row, rows, [up] * len(rows),
                                         [result] * len(rows)))
            marks = [(done, row[0]) for row, done in zip(rows, outcomes, strict=True)
                     if done is not None]
            skipped += [row[0] for row, done in zip(rows, outcomes, strict=True) if done is None]
            with conn.cursor() as cursor:
                cursor.executemany("UPDATE object_outbox SET shipped = ARRAY(SELECT DISTINCT "
                                   "unnest(shipped || %s::text[]) ORDER BY 1) WHERE id = %s",
                                   marks)
            result.rows += len(marks)

    def _ship_row(self, row: tuple[Any, ...], up: list[TierStores],
                  result: PassResult) -> list[str] | None:
        """Copy one object into the tiers that lack it; the tiers now holding it (all of
        ``up`` when the object no longer exists: nothing is left to ship), or None."""
        _id, bucket, key, sha256, _ctype, _meta, shipped, _at = row
        wanted = [t for t in up if t.name not in shipped]
        try:
            with self.source.get_object(bucket, key) as resp:
                data = b"".join(resp.chunks())
        except ObjectMissing:
            result.gone += 1  # deleted since (its row too): nothing to protect
            return [t.name for t in up]
        except AutographError as exc:
            log.warning("outbox: cannot read %s/%s: %s", bucket, key, exc.message)
            return None
        if hashlib.sha256(data).hexdigest() != str(sha256).strip():
            log.error("outbox: %s/%s does not match its recorded sha256; not shipped",
                      bucket, key)
            return None
        blob, stored = pack(data)
        done: list[str] = []
        for tier in wanted:
            try:
                sent = self._put_blob(tier, blob, stored)
            except AutographError as exc:
                result.failed[tier.name] = exc.message
                continue
            counter = result.sent if sent else result.present
            counter[tier.name] = counter.get(tier.name, 0) + 1
            done.append(tier.name)
        return done or None

    def _put_blob(self, tier: TierStores, blob: str, stored: bytes) -> bool:
        """Store the blob unless the tier has it with this size; True when sent."""
        try:
            if tier.blobs.stat(blob).size == len(stored):
                return False
        except NotFound:
            pass
        plain = not blob.endswith(COMPRESSED_SUFFIX)
        tier.blobs.put(blob, io.BytesIO(stored), expected_sha256=blob if plain else None)
        if self.on_ship is not None:
            self.on_ship(tier.name, blob)
        return True

    def _count_pending(self, conn: psycopg.Connection[Any], names: list[str],
                       result: PassResult) -> None:
        row = conn.execute("SELECT count(*), min(written_at) FROM object_outbox "
                           "WHERE NOT (shipped @> %s::text[])", (names,)).fetchone()
        if row:
            result.pending, result.oldest_pending_at = int(row[0]), row[1]

    def _save_state(self, result: PassResult) -> None:
        previous = read_state(self.settings.dr_dir)
        protected = dict(previous.protected) if previous else {}
        protected.update(result.protected)
        write_state(self.settings.dr_dir, OutboxState(
            at=self.clock(), pending=result.pending,
            oldest_pending_at=result.oldest_pending_at, protected=protected,
            failed=result.failed,
            shipped_total=(previous.shipped_total if previous else 0) + result.rows))


def _has_outbox(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('public.object_outbox') IS NOT NULL").fetchone()
    return bool(row and row[0])

