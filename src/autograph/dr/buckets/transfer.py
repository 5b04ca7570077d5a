"""The fetch engine over :class:`S3Client`: many objects out of a bucket, concurrently, with
memory bounded whatever the object sizes (plus the counters and byte budget the put engine in
:mod:`autograph.dr.buckets.restore` shares).

:func:`fetch_objects` hands every object to a consumer as a stream of chunks, from ``workers``
threads; objects above ``large`` are read as ranged GETs fetched ``ahead`` parts in advance
(pinned to the first part's etag), so one big object never waits on one TCP stream and at most
``ahead`` parts of it are in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from autograph.errors import DependencyDown
from autograph.s3.bulk import S3Client
from autograph.s3.response import ListedObject, ObjectHead, ObjectMissing, Response

MiB = 1 << 20
CHUNK = MiB

Chunk = bytes | bytearray | memoryview
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


Consumer = Callable[[ListedObject, ObjectHead, Iterator[Chunk]], object]


@dataclass
class FetchOutcome:
    """What :func:`fetch_objects` did: objects handed over, and keys gone since the listing."""

    fetched: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)


def _guarded(chunks: Iterator[Chunk], tally: Tally) -> Iterator[Chunk]:
    try:
        for chunk in chunks:
            tally.add(size=len(chunk))
            yield chunk
    except DependencyDown as exc:
        raise _ReadFailed(exc.message) from None


def _read_body(resp: Response, where: str) -> bytearray:
    """The whole body of ``resp``, read straight into one buffer (no intermediate copies)."""
    buffer = bytearray(int(resp.header("Content-Length") or 0))
    view = memoryview(buffer)
    done = 0
    try:
        while done < len(buffer):
            got = resp.readinto(view[done:])
            if not got:
                break
            done += got
    except DependencyDown as exc:
        raise _ReadFailed(f"S3 read of {where} failed: {exc.message}") from None
    finally:
        view.release()
    if done != len(buffer):
        resp.close(broken=True)
        raise _ReadFailed(f"S3 read of {where} ended early")
    return buffer


def _read_range(
    client: S3Client, bucket: str, key: str, first: int, last: int, etag: str
) -> bytearray:
    headers = {"Range": f"bytes={first}-{last}"}
    if etag:
        headers["If-Match"] = f'"{etag}"'
    with client.request(
        "GET", bucket, key, headers=headers, ok=(206,), payload_sha256=None
    ) as resp:
        return _read_body(resp, f"{bucket}/{key}")


def _ranged(
    client: S3Client,
    pool: ThreadPoolExecutor,
    bucket: str,
    key: str,
    head: ObjectHead,
    first_part: bytearray,
    part: int,
    ahead: int,
) -> Iterator[Chunk]:
    """The object's bytes: the first part already read, the rest prefetched ``ahead`` deep."""
    ranges = [
        (start, min(start + part, head.size) - 1)
        for start in range(len(first_part), head.size, part)
    ]
    pending: list[Future[bytearray]] = []
    fetched = 0

    def refill() -> None:
        nonlocal fetched
        while len(pending) < ahead and fetched < len(ranges):
            low, high = ranges[fetched]
            pending.append(pool.submit(_read_range, client, bucket, key, low, high, head.etag))
            fetched += 1

    try:
        refill()
        buffers = [first_part]
        while buffers:
            view = memoryview(buffers.pop())
            for start in range(0, len(view), CHUNK):
                yield view[start : start + CHUNK]
            del view
            if pending:
                buffers.append(pending.pop(0).result())
                refill()
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
    part: int = 8 * MiB,
    ahead: int = 3,
    attempts: int = 3,
    progress: ProgressFn | None = None,
) -> FetchOutcome:
    """GET every listed object and pass it to ``consume(listed, head, chunks)`` (from
    ``workers`` threads, big objects first). A key deleted since the listing is reported in
    ``missing``; a read that breaks off is retried (``consume`` must accept a fresh attempt).

    Raises the first other error (DependencyDown when S3 stays unreachable, or whatever
    ``consume`` raised) after stopping the other workers.
    """
    fetcher = _Fetcher(client, bucket, consume, large=large, part=part, ahead=ahead,
                       attempts=attempts, tally=Tally(progress))
    return fetcher.run(sorted(objects, key=lambda o: (o.size < large, o.key)), workers)


class _Fetcher:
    """One :func:`fetch_objects` call: worker threads taking the next object off a shared
    cursor, a pool for the ranged reads of big objects, and the first error stopping them all."""

    def __init__(self, client: S3Client, bucket: str, consume: Consumer, *, large: int,
                 part: int, ahead: int, attempts: int, tally: Tally) -> None:
        self.client, self.bucket, self.consume = client, bucket, consume
        self.large, self.part, self.ahead, self.attempts = large, part, ahead, attempts
        self.tally = tally
        self.outcome = FetchOutcome()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.cursor: Iterator[ListedObject] = iter(())

    def run(self, order: Sequence[ListedObject], workers: int) -> FetchOutcome:
        """Fetch ``order`` with ``workers`` threads; raise the first error any of them met."""
        self.cursor = iter(order)
        with ThreadPoolExecutor(self.ahead, thread_name_prefix="s3-range") as ranges:
            threads = [
                threading.Thread(target=self.work, args=(ranges,), name=f"s3-fetch-{n}",
                                 daemon=True)
                for n in range(max(1, workers))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self.errors:
            raise self.errors[0]
        self.outcome.fetched = self.tally.objects
        self.outcome.bytes = self.tally.bytes
        self.outcome.missing.sort()
        return self.outcome

    def work(self, ranges: ThreadPoolExecutor) -> None:
        """One worker: take objects until none is left or another worker failed."""
        while not self.stop.is_set():
            with self.lock:
                listed = next(self.cursor, None)
            if listed is None:
                return
            try:
                self.fetch_one(listed, ranges)
            except BaseException as exc:
                with self.lock:
                    self.errors.append(exc)
                self.stop.set()
                return
            self.tally.add(objects=1)

    def fetch_one(self, listed: ListedObject, ranges: ThreadPoolExecutor) -> None:
        """GET one object into ``consume`` (ranged when big), retrying a read that broke off;
        a key deleted since the listing goes to ``missing``."""
        client, bucket = self.client, self.bucket
        for attempt in range(1, self.attempts + 1):
            try:
                if listed.size >= self.large:
                    head, data = _read_first(client, bucket, listed.key, self.part)
                    chunks = _ranged(client, ranges, bucket, listed.key, head, data, self.part,
                                     self.ahead)
                    self.consume(listed, head, _guarded(chunks, self.tally))
                else:
                    with client.get_object(bucket, listed.key) as resp:
                        self.consume(listed, resp.head(),
                                     _guarded(resp.chunks(CHUNK), self.tally))
                return
            except ObjectMissing:
                with self.lock:
                    self.outcome.missing.append(listed.key)
                return
            except _ReadFailed:
                if attempt == self.attempts or self.stop.is_set():
                    raise


def _read_first(client: S3Client, bucket: str, key: str, part: int) -> tuple[ObjectHead, bytearray]:
    """The first ``part`` bytes of an object and what its headers say about the whole."""
    with client.get_object(bucket, key, (0, part - 1)) as resp:
        return resp.head(), _read_body(resp, f"{bucket}/{key}")
