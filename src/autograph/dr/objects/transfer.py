"""The bulk transfer engine over :class:`S3Client`: many objects out of a bucket, many into one,
and one big file up in parts. Concurrency is bounded by workers and by bytes in flight, so
memory stays flat whatever the object sizes.

- :func:`fetch_objects` hands every object to a consumer as a stream of chunks, from ``workers``
  threads; objects above ``large`` are read as ranged GETs fetched ``ahead`` parts in advance
  (pinned to the first part's etag), so one big object never waits on one TCP stream.
- :func:`put_objects` takes objects one after another from a reader (an archive) and PUTs them
  from worker threads, multipart above ``large``; it retries and reports, never drops silently.
- :func:`upload_file` sends a local file as a multipart upload, parts checked by MD5 and sha256.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from autograph.dr.objects.s3io import ListedObject, ObjectHead, ObjectMissing, S3Client
from autograph.errors import AutographError, DependencyDown, OperationFailed

MiB = 1 << 20
CHUNK = MiB

ProgressFn = Callable[[int, int], None]
"""``(objects done, bytes done)``, called from worker threads."""


class Tally:
    """Thread-safe object and byte counters that report to an optional callback."""

    def __init__(self, callback: ProgressFn | None = None) -> None:
        self.objects = 0
        self.bytes = 0
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, objects: int = 0, size: int = 0) -> None:
        with self._lock:
            self.objects += objects
            self.bytes += size
            counts = (self.objects, self.bytes)
        if self._callback is not None:
            self._callback(*counts)


class Budget:
    """A byte semaphore: ``take(n)`` blocks while more than ``limit`` bytes are out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._out = 0
        self._cond = threading.Condition()

    def take(self, size: int) -> int:
        size = min(size, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self._out + size <= self.limit)
            self._out += size
        return size

    def give(self, size: int) -> None:
        with self._cond:
            self._out -= size
            self._cond.notify_all()


class _ReadFailed(DependencyDown):
    """A GET broke off mid-body; the object may be fetched again."""


Consumer = Callable[[ListedObject, ObjectHead, Iterator[bytes]], object]


@dataclass
class FetchOutcome:
    """What :func:`fetch_objects` did: objects handed over, and keys gone since the listing."""

    fetched: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)


def _guarded(chunks: Iterator[bytes], tally: Tally) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            tally.add(size=len(chunk))
            yield chunk
    except DependencyDown as exc:
        raise _ReadFailed(exc.message) from None


def _read_range(
    client: S3Client, bucket: str, key: str, first: int, last: int, etag: str
) -> bytearray:
    headers = {"Range": f"bytes={first}-{last}"}
    if etag:
        headers["If-Match"] = f'"{etag}"'
    buffer = bytearray(last - first + 1)
    view = memoryview(buffer)
    with client.request(
        "GET", bucket, key, headers=headers, ok=(206,), payload_sha256=None
    ) as resp:
        done = 0
        try:
            while done < len(buffer):
                got = resp.raw.readinto(view[done:])
                if not got:
                    break
                done += got
        except OSError as exc:
            raise _ReadFailed(f"S3 read of {bucket}/{key} failed: {exc}") from None
    if done != len(buffer):
        raise _ReadFailed(f"S3 read of {bucket}/{key} ended early")
    return buffer


def _ranged(
    client: S3Client,
    pool: ThreadPoolExecutor,
    bucket: str,
    key: str,
    head: ObjectHead,
    first_part: bytes,
    part: int,
    ahead: int,
) -> Iterator[bytes]:
    """The object's bytes: the first part already read, the rest prefetched ``ahead`` deep."""
    yield first_part
    ranges = [
        (start, min(start + part, head.size) - 1)
        for start in range(len(first_part), head.size, part)
    ]
    pending: list[Future[bytearray]] = []
    try:
        for index in range(len(ranges)):
            while len(pending) < ahead and index + len(pending) < len(ranges):
                first, last = ranges[index + len(pending)]
                pending.append(
                    pool.submit(_read_range, client, bucket, key, first, last, head.etag)
                )
            data = pending.pop(0).result()
            for start in range(0, len(data), CHUNK):
                yield bytes(data[start : start + CHUNK])
    finally:
        for future in pending:
            future.cancel()


def fetch_objects(
    client: S3Client,
    bucket: str,
    objects: Sequence[ListedObject],
    consume: Consumer,
    *,
    workers: int = 16,
    large: int = 64 * MiB,
    part: int = 16 * MiB,
    ahead: int = 4,
    attempts: int = 3,
    progress: ProgressFn | None = None,
) -> FetchOutcome:
    """GET every listed object and pass it to ``consume(listed, head, chunks)`` (from
    ``workers`` threads, big objects first). A key deleted since the listing is reported in
    ``missing``; a read that breaks off is retried (``consume`` must accept a fresh attempt).

    Raises the first other error (DependencyDown when S3 stays unreachable, or whatever
    ``consume`` raised) after stopping the other workers.
    """
    order = sorted(objects, key=lambda o: (o.size < large, o.key))
    outcome = FetchOutcome()
    tally = Tally(progress)
    lock = threading.Lock()
    cursor = iter(order)
    stop = threading.Event()
    errors: list[BaseException] = []

    def fetch_one(listed: ListedObject, ranges: ThreadPoolExecutor) -> None:
        for attempt in range(1, attempts + 1):
            try:
                if listed.size >= large:
                    first = _read_first(client, bucket, listed.key, part)
                    head, data = first
                    chunks = _ranged(client, ranges, bucket, listed.key, head, data, part, ahead)
                    consume(listed, head, _guarded(chunks, tally))
                else:
                    with client.get_object(bucket, listed.key) as resp:
                        consume(listed, resp.head(), _guarded(resp.chunks(CHUNK), tally))
                return
            except ObjectMissing:
                with lock:
                    outcome.missing.append(listed.key)
                return
            except _ReadFailed:
                if attempt == attempts or stop.is_set():
                    raise

    def work(ranges: ThreadPoolExecutor) -> None:
        while not stop.is_set():
            with lock:
                listed = next(cursor, None)
            if listed is None:
                return
            try:
                fetch_one(listed, ranges)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                stop.set()
                return
            tally.add(objects=1)

    with ThreadPoolExecutor(ahead, thread_name_prefix="s3-range") as ranges:
        threads = [
            threading.Thread(target=work, args=(ranges,), name=f"s3-fetch-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    outcome.fetched = tally.objects
    outcome.bytes = tally.bytes
    outcome.missing.sort()
    return outcome


def _read_first(client: S3Client, bucket: str, key: str, part: int) -> tuple[ObjectHead, bytes]:
    """The first ``part`` bytes of an object and what its headers say about the whole."""
    with client.get_object(bucket, key, (0, part - 1)) as resp:
        head = resp.head()
        return head, resp.read()


# --- putting -----------------------------------------------------------------------------------


class Restorable(Protocol):
    """An object to store: its key, size, content type, user metadata and sha256."""

    key: str
    size: int
    content_type: str
    metadata: dict[str, str]
    sha256: str


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
        self, client: S3Client, bucket: str, workers: int, budget: int, attempts: int, tally: Tally
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="s3-put")
        self.budget = Budget(budget)
        self.attempts = attempts
        self.tally = tally
        self.outcome = PutOutcome()
        self.lock = threading.Lock()
        self.futures: list[Future[None]] = []

    def retrying(self, what: Callable[[], str]) -> str:
        last: AutographError | None = None
        for _ in range(self.attempts):
            try:
                return what()
            except (DependencyDown, OperationFailed) as exc:
                last = exc
        assert last is not None
        raise last

    def fail(self, key: str, error: AutographError) -> None:
        with self.lock:
            self.outcome.failed[key] = error.message

    def put_small(self, item: Restorable, data: bytes, held: int) -> None:
        try:
            self.retrying(
                lambda: self.client.put_object(
                    self.bucket,
                    item.key,
                    data,
                    content_type=item.content_type,
                    metadata=item.metadata,
                    sha256=item.sha256,
                )
            )
            with self.lock:
                self.outcome.restored += 1
                self.outcome.bytes += len(data)
            self.tally.add(1, len(data))
        except AutographError as exc:
            self.fail(item.key, exc)
        finally:
            self.budget.give(held)

    def put_large(self, item: Restorable, stream: BinaryIO, part: int) -> None:
        """Multipart: parts read here (the reader's thread), sent by the pool."""
        try:
            upload_id = self.retrying(
                lambda: self.client.create_multipart(
                    self.bucket, item.key, content_type=item.content_type, metadata=item.metadata
                )
            )
        except AutographError as exc:
            self.fail(item.key, exc)
            return
        parts: list[Future[str]] = []
        for number in range(1, max(1, -(-item.size // part)) + 1):
            data = stream.read(part) if item.size else b""
            held = self.budget.take(len(data))
            parts.append(self.pool.submit(self._part, item.key, upload_id, number, data, held))
        done: Future[None] = Future()
        self.futures.append(done)
        threading.Thread(
            target=self._complete, args=(item, upload_id, parts, done), daemon=True
        ).start()

    def _part(self, key: str, upload_id: str, number: int, data: bytes, held: int) -> str:
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
            self.retrying(
                lambda: self.client.complete_multipart(self.bucket, item.key, upload_id, etags)
            )
            with self.lock:
                self.outcome.restored += 1
                self.outcome.bytes += item.size
            self.tally.add(objects=1)
        except AutographError as exc:
            self.client.abort_multipart(self.bucket, item.key, upload_id)
            self.fail(item.key, exc)
        finally:
            done.set_result(None)


def put_objects(
    client: S3Client,
    bucket: str,
    items: Iterable[tuple[Restorable, BinaryIO]],
    *,
    skip: Callable[[str], bool] = lambda _key: False,
    workers: int = 16,
    budget: int = 128 * MiB,
    large: int = 64 * MiB,
    part: int = 16 * MiB,
    attempts: int = 3,
    progress: ProgressFn | None = None,
) -> PutOutcome:
    """Store each ``(item, stream)`` under ``item.key`` with its content type and metadata.

    ``items`` is consumed in order in this thread (each stream read before the next item is
    asked for); keys for which ``skip(key)`` is true are counted as skipped, unread. Every
    PUT is checked by the server against ``item.sha256``; a failing object is retried
    ``attempts`` times, then reported in ``failed``. Raises what reading ``items`` raises
    (e.g. IntegrityError), after waiting for the uploads already started.
    """
    putter = _Putter(client, bucket, workers, budget, attempts, Tally(progress))
    try:
        for item, stream in items:
            if skip(item.key):
                putter.outcome.skipped += 1
                putter.outcome.skipped_keys.append(item.key)
                continue
            if item.size >= large:
                putter.put_large(item, stream, part)
                continue
            held = putter.budget.take(max(item.size, 1))
            try:
                data = stream.read() if item.size else b""
            except BaseException:
                putter.budget.give(held)
                raise
            putter.futures.append(putter.pool.submit(putter.put_small, item, data, held))
    finally:
        for future in putter.futures:
            with contextlib.suppress(Exception):
                future.result()
        putter.pool.shutdown(wait=True)
    return putter.outcome


# --- one file up ---------------------------------------------------------------------------


def upload_file(
    client: S3Client,
    bucket: str,
    key: str,
    path: Path,
    *,
    part: int = 16 * MiB,
    workers: int = 6,
    content_type: str = "application/gzip",
    progress: Callable[[int], None] | None = None,
) -> str:
    """Upload ``path`` to ``bucket/key`` (multipart when bigger than a part, parts read with
    ``pread`` and sent concurrently); return the etag. Nothing appears under ``key`` on error.

    Raises DependencyDown if S3 is unreachable, OperationFailed if a part arrives damaged.
    """
    size = path.stat().st_size
    sent = Tally(None if progress is None else lambda _o, b: progress(b))
    with open(path, "rb") as handle:
        fd = handle.fileno()
        if size <= part:
            data = os.pread(fd, size, 0)
            etag = client.put_object(bucket, key, data, content_type=content_type)
            sent.add(size=size)
            return etag
        upload_id = client.create_multipart(bucket, key, content_type=content_type)
        try:

            def send(number: int) -> str:
                data = os.pread(fd, part, (number - 1) * part)
                etag = client.upload_part(bucket, key, upload_id, number, data)
                sent.add(size=len(data))
                return etag

            with ThreadPoolExecutor(workers, thread_name_prefix="s3-upload") as pool:
                etags = list(pool.map(send, range(1, -(-size // part) + 1)))
            return client.complete_multipart(bucket, key, upload_id, etags)
        except BaseException:
            client.abort_multipart(bucket, key, upload_id)
            raise
