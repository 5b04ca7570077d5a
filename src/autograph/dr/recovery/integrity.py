"""Integrity evidence for drills and recoveries: fingerprints of the database (per-table row
counts and an order-independent checksum of the rows) and of the buckets (key -> etag, size),
their comparison, and the cross-check that every stored object reference has its object.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from autograph.config import Settings
from autograph.connections import pg_kwargs
from autograph.errors import DependencyDown
from autograph.secrets import Credentials

SAMPLE = 10

# Which columns of the application schema name objects in which bucket.
OBJECT_REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("diagram_versions", "object_key", "diagrams"),
    ("uploads", "object_key", "uploads"),
)


@dataclass(frozen=True)
class TableFingerprint:
    """Row count and checksum (sum of 60-bit prefixes of each row's md5, as text)."""

    rows: int
    checksum: str


@dataclass
class Fingerprint:
    """The state of the data at one moment."""

    tables: dict[str, TableFingerprint] = field(default_factory=dict)
    objects: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        return {"tables": {name: t.rows for name, t in sorted(self.tables.items())},
                "objects": {bucket: len(keys) for bucket, keys in sorted(self.objects.items())}}


def connect(settings: Settings, creds: Credentials, dbname: str | None = None,
            timeout: int = 5) -> psycopg.Connection[Any]:
    """A connection to the application database. Raises DependencyDown when unreachable."""
    try:
        conn = psycopg.connect(**pg_kwargs(settings, creds, dbname, connect_timeout=timeout),
                               autocommit=True, application_name="autograph-dr")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()
        raise DependencyDown(f"PostgreSQL: {first[0] if first else 'unreachable'}") from None
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def table_fingerprints(settings: Settings, creds: Credentials) -> dict[str, TableFingerprint]:
    """Every user table's row count and checksum. Raises DependencyDown if unreachable."""
    with connect(settings, creds) as conn:
        names = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        result: dict[str, TableFingerprint] = {}
        for schema, table in names:
            query = sql.SQL(
                "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)"
                "::bigint), 0)::text FROM {}.{} AS t").format(
                    sql.Identifier(schema), sql.Identifier(table))
            rows, checksum = conn.execute(query).fetchone() or (0, "0")
            label = table if schema == "public" else f"{schema}.{table}"
            result[label] = TableFingerprint(int(rows), str(checksum))
        return result


def object_fingerprints(s3: Any, buckets: tuple[str, ...] | list[str]
                        ) -> dict[str, dict[str, tuple[str, int]]]:
    """Each bucket's key -> (etag, size), the buckets listed at the same time; a missing
    bucket is an empty mapping."""

    def one(bucket: str) -> dict[str, tuple[str, int]]:
        keys: dict[str, tuple[str, int]] = {}
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    keys[item["Key"]] = (item["ETag"].strip('"'), int(item["Size"]))
        except Exception as exc:  # NoSuchBucket after a loss: nothing there
            if "NoSuchBucket" not in str(exc):
                raise
        return keys

    with ThreadPoolExecutor(max(1, len(buckets))) as pool:
        return dict(zip(buckets, pool.map(one, buckets), strict=True))


def fingerprint(settings: Settings, creds: Credentials, s3: Any, *, tables: bool = True,
                objects: bool = True) -> Fingerprint:
    """The database's and the application buckets' fingerprints."""
    return Fingerprint(
        tables=table_fingerprints(settings, creds) if tables else {},
        objects=object_fingerprints(s3, settings.app_buckets) if objects else {})


def compare_tables(expected: dict[str, TableFingerprint],
                   actual: dict[str, TableFingerprint]) -> dict[str, Any]:
    """Per table: expected and actual rows, whether the checksums match; ``ok`` overall."""
    tables: dict[str, Any] = {}
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name), actual.get(name)
        tables[name] = {
            "expected_rows": want.rows if want else None,
            "rows": got.rows if got else None,
            "checksum_match": bool(want and got and want.checksum == got.checksum),
        }
    bad = [name for name, t in tables.items() if not t["checksum_match"]]
    return {"ok": not bad, "tables": tables, "mismatched": bad}


def compare_objects(expected: dict[str, dict[str, tuple[str, int]]],
                    actual: dict[str, dict[str, tuple[str, int]]]) -> dict[str, Any]:
    """Per bucket: key sets and etags compared; ``ok`` when identical."""
    buckets: dict[str, Any] = {}
    for bucket in sorted(set(expected) | set(actual)):
        want, got = expected.get(bucket, {}), actual.get(bucket, {})
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        buckets[bucket] = {"expected": len(want), "found": len(got), "missing": len(missing),
                           "extra": len(extra), "changed": len(changed),
                           "sample": (missing + extra + changed)[:SAMPLE]}
    bad = [b for b, v in buckets.items() if v["missing"] or v["extra"] or v["changed"]]
    return {"ok": not bad, "buckets": buckets, "mismatched": bad}


def dangling_references(settings: Settings, creds: Credentials,
                        objects: dict[str, dict[str, tuple[str, int]]],
                        keep_keys: bool = False) -> dict[str, Any]:
    """Rows that name an object missing from its bucket (a diagram version whose canvas is
    gone, an upload without its bytes), and objects no row names (orphans, harmless).
    ``keep_keys`` adds every dangling key per table (``keys``), not only a sample."""
    result: dict[str, Any] = {}
    referenced: dict[str, set[str]] = {}
    with connect(settings, creds) as conn:
        for table, column, bucket in OBJECT_REFERENCES:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 (f"public.{table}",)).fetchone()
            if not (found and found[0]) or bucket not in objects:
                result[table] = {"checked": False}
                continue
            query = sql.SQL("SELECT DISTINCT {} FROM {}").format(
                sql.Identifier(column), sql.Identifier(table))
            keys = {row[0] for row in conn.execute(query)}
            referenced.setdefault(bucket, set()).update(keys)
            dangling = sorted(keys - set(objects[bucket]))
            result[table] = {"checked": True, "references": len(keys),
                             "dangling": len(dangling), "sample": dangling[:SAMPLE]}
            if keep_keys:
                result[table]["keys"] = dangling
    result["ok"] = all(v.get("dangling", 0) == 0 for v in result.values())
    result["orphans"] = {bucket: len(set(objects[bucket]) - keys)
                         for bucket, keys in referenced.items()}
    return result


def still_dangling(settings: Settings, creds: Credentials, s3: Any,
                   candidates: dict[str, list[str]], head_limit: int = 200) -> dict[str, int]:
    """Of keys found dangling per table, those a row still names now whose object is still
    missing (a row written or removed while the buckets were listed is not a loss). Objects
    are checked one by one only up to ``head_limit`` keys; beyond, the listing stands."""
    columns = {table: (column, bucket) for table, column, bucket in OBJECT_REFERENCES}
    total = sum(len(keys) for keys in candidates.values())
    confirmed: dict[str, int] = {}
    with connect(settings, creds) as conn:
        for table, keys in candidates.items():
            column, bucket = columns[table]
            query = sql.SQL("SELECT DISTINCT {col} FROM {tab} WHERE {col} = ANY(%s)").format(
                col=sql.Identifier(column), tab=sql.Identifier(table))
            named = [row[0] for row in conn.execute(query, (keys,))]
            if total <= head_limit:
                named = [key for key in named if not _exists(s3, bucket, key)]
            if named:
                confirmed[table] = len(named)
    return confirmed


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # 404 / NoSuchKey: missing; anything else: assume present
        return "404" not in str(exc) and "NoSuchKey" not in str(exc) and \
            "Not Found" not in str(exc)
    return True
