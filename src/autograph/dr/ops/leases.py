"""Leases across hosts that share no disk (SPEC §11: several gateway hosts).

The per-kind operation locks and the schedules' run locks of :mod:`locks` are ``flock`` files in
the backup folder: they coordinate the processes of one host. With ``AUTOGRAPH_LEASES=cluster``
each of them also takes a lease that every host sees:

- a PostgreSQL advisory lock (``pg_try_advisory_lock``) on a connection held for the lease, when
  PostgreSQL answers. The server drops it when the holder's session ends, so a killed holder
  frees it at once (a vanished host: after the TCP keepalives give up, ≈ 25 s);
- always also a lease object ``leases/<name>.json`` in the backup S3 bucket, created with
  ``If-None-Match: *`` (one creator wins; SeaweedFS, MinIO and AWS S3 answer 412 to the others),
  renewed with ``If-Match`` every third of its time to live, deleted on release. A holder that
  died leaves it to expire; one that held the advisory lock too can be replaced at once by
  whoever gets that lock (it proves the old holder's session is gone).

Contenders therefore agree whichever of the two stores they can reach. With neither reachable the
lease degrades to this host's ``flock`` and says so in the log: the scheduler keeps working in a
disaster, on one host.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from autograph.clock import Clock, isoformat, utc_now
from autograph.config import Settings
from autograph.connections import pg_kwargs
from autograph.errors import Conflict
from autograph.secrets import Credentials

log = logging.getLogger("autograph.dr.leases")
PREFIX = "leases/"


class LeaseRecord(BaseModel):
    """The body of a lease object: who holds it and until when."""

    holder: str
    operation: str
    acquired_at: datetime
    expires_at: datetime
    postgres: bool  # the holder also held the advisory lock


@dataclass
class Lease:
    """A held lease; ``release`` (idempotent, from any thread) frees both parts."""

    name: str
    backends: tuple[str, ...]
    _release: list[Any] = field(default_factory=list)
    lost: bool = False

    def release(self) -> None:
        """Stop renewing, delete the lease object, end the advisory lock's session."""
        while self._release:
            try:
                self._release.pop()()
            except Exception as exc:  # releasing must not raise: it expires anyway
                log.warning("releasing lease %s: %s", self.name, exc)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from the lease name."""
    digest = hashlib.sha256(f"autograph:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaseManager:
    """Takes leases for one process (its holder id: host, pid and a random suffix)."""

    def __init__(self, settings: Settings, creds: Credentials, *, ttl: float,
                 clock: Clock = utc_now, s3: Any = None) -> None:
        from autograph.s3.boto import backup_client

        self.settings, self.creds, self.ttl, self.clock = settings, creds, ttl, clock
        self.s3 = s3 or backup_client(settings, creds, retries=1, connect_timeout=2,
                                      read_timeout=5)
        self.bucket = settings.backup_bucket_database
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"

    def acquire(self, name: str, operation: str) -> Lease:
        """Take lease ``name`` without waiting. Raises Conflict naming the holder."""
        conn = self._advisory(name)
        lease = Lease(name, ())
        if conn is not None:
            lease._release.append(conn.close)
        try:
            etag = self._create(name, operation, postgres=conn is not None)
        except BaseException:
            lease.release()
            raise
        backends = (("postgres",) if conn is not None else ()) + (("s3",) if etag else ())
        lease.backends = backends
        if etag is not None:
            self._keep(lease, etag, operation, conn is not None)
        if not backends:
            log.warning("lease %s: neither PostgreSQL nor the backup S3 store answers; "
                        "only this host's lock guards %s", name, operation)
        return lease

    # PostgreSQL --------------------------------------------------------------------------------

    def _advisory(self, name: str) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(**pg_kwargs(self.settings, self.creds, "postgres",
                                               connect_timeout=2),
                                   autocommit=True, application_name="autograph-lease",
                                   keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                   keepalives_count=3)
        except psycopg.Error:
            return None  # down: the S3 lease alone
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)",
                               (advisory_key(name),)).fetchone()
        except psycopg.Error:
            conn.close()
            return None
        if row is None or not row[0]:
            conn.close()
            raise Conflict(f"{name} is held by another process (PostgreSQL advisory lock)")
        return conn

    # S3 ----------------------------------------------------------------------------------------

    def _record(self, operation: str, postgres: bool) -> bytes:
        now = self.clock()
        return LeaseRecord(holder=self.holder, operation=operation, acquired_at=now,
                           expires_at=now + timedelta(seconds=self.ttl),
                           postgres=postgres).model_dump_json().encode()

    def _create(self, name: str, operation: str, *, postgres: bool) -> str | None:
        """Create the lease object, or replace an expired (or provably dead) holder's.
        Returns its ETag; None when the store does not answer. Raises Conflict."""
        from botocore.exceptions import BotoCoreError, ClientError

        key, body = f"{PREFIX}{name}.json", self._record(operation, postgres)
        try:
            try:
                return str(self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                              IfNoneMatch="*")["ETag"])
            except ClientError as exc:
                if not _precondition_failed(exc):
                    raise
            current = self.s3.get_object(Bucket=self.bucket, Key=key)
            record = LeaseRecord.model_validate_json(current["Body"].read())
            if record.expires_at > self.clock() and not (postgres and record.postgres):
                raise Conflict(f"{name} is held by {record.holder} ({record.operation}) until "
                               f"{isoformat(record.expires_at)}")
            try:
                return str(self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                              IfMatch=current["ETag"])["ETag"])
            except ClientError as exc:
                if _precondition_failed(exc):
                    raise Conflict(f"{name} was taken over by another process first") from None
                raise
        except (BotoCoreError, ClientError, ValueError) as exc:
            log.warning("lease %s: backup S3 store unusable (%s)", name, type(exc).__name__)
            return None

    def _keep(self, lease: Lease, etag: str, operation: str, postgres: bool) -> None:
        """Renew every third of the time to live until released; delete on release."""
        from botocore.exceptions import BotoCoreError, ClientError

        key, stop, state = f"{PREFIX}{lease.name}.json", threading.Event(), {"etag": etag}

        def renew() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    answer = self.s3.put_object(Bucket=self.bucket, Key=key,
                                                Body=self._record(operation, postgres),
                                                IfMatch=state["etag"])
                    state["etag"] = str(answer["ETag"])
                except ClientError as exc:
                    if _precondition_failed(exc):
                        lease.lost = True
                        log.error("lease %s lost: another holder replaced it", lease.name)
                        return
                except BotoCoreError as exc:
                    log.warning("lease %s: renewal failed (%s)", lease.name, exc)

        thread = threading.Thread(target=renew, name=f"lease-{lease.name}", daemon=True)
        thread.start()

        def delete() -> None:
            stop.set()
            thread.join(timeout=10)
            if lease.lost:
                return
            try:
                head = self.s3.head_object(Bucket=self.bucket, Key=key)
                if head["ETag"] == state["etag"]:
                    self.s3.delete_object(Bucket=self.bucket, Key=key)
            except (BotoCoreError, ClientError) as exc:
                log.warning("lease %s: not deleted (%s); it expires", lease.name, exc)

        lease._release.append(delete)


def _precondition_failed(exc: Any) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or \
        status in (409, 412)


def install(settings: Settings, creds: Credentials) -> LeaseManager | None:
    """With ``AUTOGRAPH_LEASES=cluster``, make this process's locks take leases across hosts."""
    from autograph.dr.ops import locks

    if settings.leases != "cluster":
        return None
    manager = LeaseManager(settings, creds, ttl=settings.lease_ttl_seconds)
    locks.use_leases(manager.acquire)
    return manager
