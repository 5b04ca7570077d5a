"""Restoring a bucket archive into a bucket: the put engine and :func:`restore_archive`.

The archive is read once, in order, in the caller's thread (each object's sha256 is checked as
its last byte is read); objects are stored from a pool of worker threads, small ones in one PUT
with their Content-MD5, big ones as multipart uploads whose parts are sent while the next ones
are read. Bytes waiting to be sent are bounded (``budget``). A failing request is retried (by
the client on network errors and 5xx; idempotent PUTs ``attempts`` more times here, never the
POSTs that create or complete a multipart upload), then the object is reported
in ``failed``: never dropped silently. With ``overwrite=False`` a key that exists
(listed before the restore, or created meanwhile: ``If-None-Match: *``) is skipped, unread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from autograph.dr.buckets.archive_read import iter_archive
from autograph.dr.buckets.transfer import Budget, MiB, ProgressFn, Tally
from autograph.errors import AutographError, DependencyDown, IntegrityError, OperationFailed
from autograph.s3.bulk import Body, S3Client
from autograph.s3.response import ObjectMissing


class Restorable(Protocol):
    """An object to store: its key, size, content type, user metadata and sha256."""

    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str: ...
    @property
    def metadata(self) -> dict[str, str]: ...
    @property
    def sha256(self) -> str: ...


class Readable(Protocol):
    """Where an object's bytes come from (an archive member)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class PutOutcome:
    """What :func:`put_objects` did; ``failed`` maps keys to the last error after retries."""

    restored: int = 0
    skipped: int = 0
    bytes: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped_keys: list[str] = field(default_factory=list)


class _Putter:
    """Shared state of one :func:`put_objects` run."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        workers: int,
        budget: int,
        attempts: int,
        if_absent: bool,
        tally: Tally,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="s3-put")
        self.budget = Budget(budget)
        self.attempts = max(1, attempts)
        self.if_absent = if_absent
        self.tally = tally
        self.outcome = PutOutcome()
        self.lock = threading.Lock()
        self.pending: list[Future[None]] = []

    def retrying(self, call: Callable[[], str]) -> str:
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except (DependencyDown, OperationFailed):
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")

    def _done(self, item: Restorable, stored: bool) -> None:
        with self.lock:
            if stored:
                self.outcome.restored += 1
                self.outcome.bytes += item.size
            else:
                self.outcome.skipped += 1
                self.outcome.skipped_keys.append(item.key)
        self.tally.add(objects=1)

    def skip(self, item: Restorable) -> None:
        self._done(item, stored=False)

    def _fail(self, item: Restorable, error: AutographError) -> None:
        with self.lock:
            self.outcome.failed[item.key] = error.message

    def put_small(self, item: Restorable, data: Body, held: int) -> None:
        try:
            etag = self.retrying(lambda: self._put(item, data, self.if_absent))
            if not etag and not self._exists(item.key):
                # 412 without an object: some servers (SeaweedFS) count an implicit folder
                # ("a" while "a/b" exists) as present; the key itself is free.
                etag = self.retrying(lambda: self._put(item, data, False))
            self.tally.add(size=len(data))
            self._done(item, stored=bool(etag))
        except AutographError as exc:
            self._fail(item, exc)
        finally:
            self.budget.give(held)

    def _put(self, item: Restorable, data: Body, if_absent: bool) -> str:
        return self.client.put_object(
            self.bucket,
            item.key,
            data,
            content_type=item.content_type,
            metadata=item.metadata,
            sha256=item.sha256,
            if_absent=if_absent,
        )

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(self.bucket, key)
        except ObjectMissing:
            return False
        return True

    def put_large(self, item: Restorable, stream: Readable, part: int) -> None:
        """Multipart: parts read here (the reader's thread), sent by the pool, completed by a
        helper thread once they are all in."""
        try:
            # Not retried here: a second "create" after one that may have arrived leaves an
            # orphan upload (the client re-sends only what provably never left).
            upload_id = self.client.create_multipart(
                self.bucket, item.key, content_type=item.content_type, metadata=item.metadata
            )
        except AutographError as exc:
            self._fail(item, exc)
            return
        parts: list[Future[str]] = []
        for number in range(1, -(-item.size // part) + 1):
            held = self.budget.take(part)
            try:
                data = _read_full(stream, min(part, item.size - (number - 1) * part))
            except BaseException:
                self.budget.give(held)
                self.client.abort_multipart(self.bucket, item.key, upload_id)
                raise
            parts.append(self.pool.submit(self._part, item.key, upload_id, number, data, held))
        done: Future[None] = Future()
        self.pending.append(done)
        threading.Thread(
            target=self._complete,
            args=(item, upload_id, parts, done),
            name="s3-complete",
            daemon=True,
        ).start()

    def _part(self, key: str, upload_id: str, number: int, data: Body, held: int) -> str:
        try:
            etag = self.retrying(
                lambda: self.client.upload_part(self.bucket, key, upload_id, number, data)
            )
            self.tally.add(size=len(data))
            return etag
        finally:
            self.budget.give(held)

    def _complete(
        self, item: Restorable, upload_id: str, parts: list[Future[str]], done: Future[None]
    ) -> None:
        try:
            etags = [future.result() for future in parts]
            # The client settles a lost answer itself (asks S3, never re-posts blindly).
            self.client.complete_multipart(self.bucket, item.key, upload_id, etags,
                                           size=item.size)
            self._done(item, stored=True)
        except AutographError as exc:
            self.client.abort_multipart(self.bucket, item.key, upload_id)
            self._fail(item, exc)
        finally:
            done.set_result(None)


def _read_full(stream: Readable, size: int) -> Body:
    """Exactly ``size`` bytes (streams may return less per call), copied into one buffer.
    Raises IntegrityError when the stream ends first."""
    first = stream.read(size) if size else b""
    if len(first) == size:
        return first
    buffer = bytearray(size)
    done = len(first)
    buffer[:done] = first
    del first
    while done < size:
        data = stream.read(size - done)
        if not data:
            raise IntegrityError("the archive ends inside an object")
        buffer[done : done + len(data)] = data
        done += len(data)
    return buffer


def put_objects(
    client: S3Client,
    bucket: str,
    items: Iterable[tuple[Restorable, Readable]],
    *,
    skip: Callable[[str], bool] = lambda _key: False,
    if_absent: bool = False,
    workers: int = 16,
    budget: int = 64 * MiB,
    large: int = 64 * MiB,
    part: int = 8 * MiB,
    attempts: int = 1,
    progress: ProgressFn | None = None,
) -> PutOutcome:
    """Store each ``(item, stream)`` under ``item.key`` with its content type and metadata.

    ``items`` is consumed in order in this thread (each stream read before the next item is
    asked for). Keys for which ``skip(key)`` holds are skipped unread; with ``if_absent`` a
    small object whose key appeared meanwhile is skipped too. Raises what reading ``items``
    raises (IntegrityError for a damaged archive), after the uploads already started end.
    """
    putter = _Putter(
        client,
        bucket,
        workers=workers,
        budget=budget,
        attempts=attempts,
        if_absent=if_absent,
        tally=Tally(progress),
    )
    try:
        for item, stream in items:
            if skip(item.key):
                putter.skip(item)
            elif item.size >= large:
                putter.put_large(item, stream, part)
            else:
                held = putter.budget.take(max(item.size, 1))
                try:
                    data = _read_full(stream, item.size)
                except BaseException:
                    putter.budget.give(held)
                    raise
                putter.pending.append(putter.pool.submit(putter.put_small, item, data, held))
    finally:
        for future in list(putter.pending):
            with contextlib.suppress(Exception):
                future.result()
        putter.pool.shutdown(wait=True)
    return putter.outcome


def restore_archive(
    client: S3Client,
    archive: Path,
    bucket: str,
    *,
    overwrite: bool,
    workers: int = 16,
    progress: ProgressFn | None = None,
) -> PutOutcome:
    """Restore every object of the archive file into ``bucket`` (created if missing).

    ``overwrite=False`` leaves every existing key untouched and reports it as skipped.
    Raises DependencyDown (S3 unreachable), IntegrityError (damaged archive: the caller checks
    the archive's sha256 first, so nothing is written then), OperationFailed.
    """
    if not client.bucket_exists(bucket):
        client.create_bucket(bucket)
    existing: set[str] = set()
    if not overwrite:
        existing = {listed.key for listed in client.list_objects(bucket)}
    with open(archive, "rb") as handle:
        return put_objects(
            client,
            bucket,
            iter_archive(handle),
            skip=existing.__contains__,
            if_absent=not overwrite,
            workers=workers,
            progress=progress,
        )
