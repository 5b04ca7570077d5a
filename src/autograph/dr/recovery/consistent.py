"""One recovery point for the database and the buckets (issue 12).

The point T is the newest protected point of the backup tiers (every object whose row
committed by then is in a tier's blob store, see :mod:`autograph.dr.buckets.watermark`), or
``--to`` when given. The database is replayed to T; each bucket gets its newest snapshot
finished by T, then :func:`replay_outbox` puts back the objects the restored database's outbox
recorded that the snapshot lacks: exactly the objects written up to T. A ``--to`` later than
the protected point cannot be made consistent: :func:`choose_point` says so before anything
is restored, and the references it leaves dangling are reported as that, not as corruption.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime
from typing import Any

from psycopg import sql
from pydantic import BaseModel, Field

from autograph.clock import isoformat
from autograph.config import Settings
from autograph.dr.buckets.snapshots.store import COMPRESSED_SUFFIX, SnapshotStore
from autograph.dr.buckets.watermark import protected_points
from autograph.dr.recovery.integrity import (
    OBJECT_REFERENCES,
    connect,
    dangling_references,
    object_fingerprints,
)
from autograph.errors import AutographError, NotFound
from autograph.secrets import Credentials

SAMPLE = 20
KEPT_KEYS = 1000


class RecoveryPoint(BaseModel):
    """The moment both the database and the buckets are restored to, and why."""

    point: datetime | None  # None: the latest the WAL holds (no protected point known)
    requested: datetime | None
    protected: dict[str, datetime] = Field(default_factory=dict)
    unknown: dict[str, str] = Field(default_factory=dict)
    consistent: bool | None  # None: no protected point recorded, so not known in advance
    note: str = ""

    def summary(self) -> str:
        shown = isoformat(self.point) if self.point else "the latest point"
        return f"recovery point {shown} ({self.note})" if self.note else f"recovery point {shown}"


def choose_point(settings: Settings, creds: Credentials, to: datetime | None,
                 with_s3: bool = True) -> RecoveryPoint:
    """The recovery point for ``to`` (None: as late as the backups allow). Never raises: a
    tier that cannot be read is listed in ``unknown``."""
    store = SnapshotStore(settings, creds, with_s3=with_s3)
    found, unknown = protected_points(store)
    newest = max(found.values(), default=None)
    if newest is None:
        return RecoveryPoint(point=to, requested=to, unknown=unknown, consistent=None,
                             note="no protected point recorded: objects written after the "
                             "last snapshot may be missing")
    if to is None:
        return RecoveryPoint(point=newest, requested=None, protected=found, unknown=unknown,
                             consistent=True, note="the newest point every referenced object "
                             "is protected at")
    if to <= newest:
        return RecoveryPoint(point=to, requested=to, protected=found, unknown=unknown,
                             consistent=True, note="--to, within the protected history")
    return RecoveryPoint(point=to, requested=to, protected=found, unknown=unknown,
                         consistent=False,
                         note=f"--to is after the newest protected point {isoformat(newest)}:"
                         " the backups cannot make it consistent; objects written after "
                         "that may be missing and their rows will be listed")


def _outbox_rows(settings: Settings, creds: Credentials,
                 buckets: list[str]) -> list[tuple[str, str, str, str, dict[str, str]]]:
    """The outbox records of the (restored) database whose object is still wanted: named by a
    row of its bucket's reference table, or in a bucket without one (exports)."""
    with connect(settings, creds) as conn:
        found = conn.execute("SELECT to_regclass('public.object_outbox') IS NOT NULL").fetchone()
        if not (found and found[0]):
            return []
        rows = conn.execute(
            "SELECT DISTINCT ON (bucket, object_key) bucket, object_key, sha256, content_type, "
            "metadata FROM object_outbox WHERE bucket = ANY(%s) ORDER BY bucket, object_key, id",
            (buckets,)).fetchall()
        wanted: dict[str, set[str]] = {}
        for table, column, bucket in OBJECT_REFERENCES:
            wanted.setdefault(bucket, set()).update(_named(conn, table, column))
    return [(b, k, s.strip(), c, dict(m or {})) for b, k, s, c, m in rows
            if b not in wanted or k in wanted[b]]


def _named(conn: Any, table: str, column: str) -> set[str]:
    """The object keys a reference table names (empty when the table does not exist)."""
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()
    if not (found and found[0]):
        return set()
    query = sql.SQL("SELECT DISTINCT {} FROM {}").format(sql.Identifier(column),
                                                         sql.Identifier(table))
    return {row[0] for row in conn.execute(query)}


def _blob_bytes(store: SnapshotStore, sha256: str) -> bytes | None:
    """The object's bytes from any tier (local first), checked; None when no tier has them."""
    for tier in store.tiers():
        for blob in (sha256 + COMPRESSED_SUFFIX, sha256):
            try:
                with tier.blobs.open(blob) as handle:
                    stored = handle.read()
            except NotFound:
                continue
            except AutographError:
                break  # tier unreachable: the next one
            try:
                data = zlib.decompress(stored) if blob.endswith(COMPRESSED_SUFFIX) else stored
            except zlib.error:
                continue
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
    return None


def replay_outbox(settings: Settings, creds: Credentials, buckets: list[str],
                  s3: Any) -> dict[str, Any]:
    """Put back every object the database's outbox records (and a row still wants) that its
    bucket lacks, from the tiers' blobs. Returns counts per bucket and the objects no tier
    holds (their rows will dangle: the reference scan reports them)."""
    store = SnapshotStore(settings, creds)
    rows = _outbox_rows(settings, creds, buckets)
    present: dict[str, set[str]] = {}
    for bucket in {r[0] for r in rows}:
        keys: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update(item["Key"] for item in page.get("Contents", []))
        present[bucket] = keys
    restored: dict[str, int] = {}
    missing: list[str] = []
    for bucket, key, sha256, content_type, metadata in rows:
        if key in present[bucket]:
            continue
        data = _blob_bytes(store, sha256)
        if data is None:
            missing.append(f"{bucket}/{key}")
            continue
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                      Metadata=metadata)
        restored[bucket] = restored.get(bucket, 0) + 1
    return {"recorded": len(rows), "restored": restored, "unprotected": len(missing),
            "unprotected_sample": missing[:SAMPLE], "unprotected_keys": missing[:KEPT_KEYS]}


def dangling_rows(settings: Settings, creds: Credentials, s3: Any) -> dict[str, list[str]]:
    """Per reference table, the object keys its rows name that their bucket lacks (for the
    report: the rows are listed, not only counted)."""
    buckets = sorted({bucket for _t, _c, bucket in OBJECT_REFERENCES})
    found = dangling_references(settings, creds, object_fingerprints(s3, buckets),
                                keep_keys=True)
    return {table: list(v["keys"]) for table, v in found.items()
            if isinstance(v, dict) and v.get("keys")}


def judge_dangling(dangling: dict[str, list[str]], unprotected: list[str],
                   buckets_only: bool) -> tuple[bool, str]:
    """``(corruption, what to say)`` for the rows naming missing objects after a recovery.

    When only the buckets were restored (the database kept its later rows), rows whose
    objects the outbox recorded but no tier received (destroyed within seconds of their
    write, before the replicator copied them) are objects lost within the RPO, said so and
    listed; any other dangling row is corruption."""
    tables = {table: bucket for table, _c, bucket in OBJECT_REFERENCES}
    named = {f"{tables[t]}/{k}" for t, keys in dangling.items() for k in keys}
    listed = "; ".join(f"{t}: {', '.join(keys[:SAMPLE])}" for t, keys in dangling.items())
    if buckets_only and named and named <= set(unprotected):
        return False, (f"{len(named)} rows name objects destroyed before they were "
                       f"protected (lost within the objects' RPO): {listed}")
    return True, f"data corruption: {len(named)} rows name missing objects: {listed}"


def orphans(settings: Settings, creds: Credentials, s3: Any, *,
            clean: bool = False) -> dict[str, Any]:
    """Objects of the referenced buckets that no row names (written after the recovery point:
    their rows were lost). Left alone, or deleted with ``clean`` (never one reserved by a
    write in flight, which is in ``object_deletions``)."""
    found: dict[str, Any] = {}
    with connect(settings, creds) as conn:
        for table, column, bucket in OBJECT_REFERENCES:
            named = _named(conn, table, column)
            reserved = {r[0] for r in conn.execute(
                "SELECT object_key FROM object_deletions WHERE bucket = %s", (bucket,))}
            keys: list[str] = []
            try:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    keys += [i["Key"] for i in page.get("Contents", [])
                             if i["Key"] not in named and i["Key"] not in reserved]
            except Exception as exc:  # NoSuchBucket: nothing there
                if "NoSuchBucket" not in str(exc):
                    raise
            if clean:
                for key in keys:
                    s3.delete_object(Bucket=bucket, Key=key)
            found[bucket] = {"orphans": len(keys), "sample": keys[:SAMPLE],
                             "cleaned": clean}
    return found
