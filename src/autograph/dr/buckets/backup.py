"""Building one bucket archive: fetch → archive → local file, verified and uploaded as it lands.

The objects are fetched concurrently into an :class:`ArchiveWriter` (which keeps key order and
puts the manifest first). When the writer assembles the archive into the local tier's temporary
file, two readers follow the file as it grows: one verifies it in full (gzip CRC, tar structure,
every object's sha256, the archive's sha256), one uploads it to the S3 tier as a multipart
upload. Both read the page cache behind the writer, so the archive is written once and read
twice without waiting for each other; the verdict is only given once the file is complete.
With verification, the archive's sha256 (the manifest's) is the digest of the bytes read back
from the disk, not of those handed to it: the archive is hashed once, where it matters.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from autograph.clock import Clock, utc_now
from autograph.dr.buckets.archive import (
    ArchiveResult,
    ArchiveWriter,
    ObjectInfo,
    VerifyResult,
)
from autograph.dr.buckets.archive_read import verify_archive
from autograph.dr.buckets.transfer import FetchOutcome, MiB, fetch_objects
from autograph.dr.models import StepRecord
from autograph.dr.ops.steps import StepTimer
from autograph.dr.storage.local import LocalWriter
from autograph.errors import AutographError, IntegrityError, OperationFailed
from autograph.s3.bulk import S3Client
from autograph.s3.response import ListedObject, ObjectHead

CountsFn = Callable[[str, int, int, int, int], None]
"""``(phase, objects done, objects total, bytes done, bytes total)``."""

UPLOAD_PART = 8 * MiB
UPLOADS_IN_FLIGHT = 3


def no_counts(_phase: str, _od: int, _ot: int, _bd: int, _bt: int) -> None:
    """A counts callback that ignores everything."""


def throttled(counts: CountsFn, interval: float = 0.1) -> CountsFn:
    """``counts``, called at most once per ``interval`` seconds (and for the last object):
    the engine reports every chunk, from many threads."""
    lock = threading.Lock()
    last = [0.0]

    def call(phase: str, done: int, of: int, size: int, size_of: int) -> None:
        now = time.monotonic()
        with lock:
            if now - last[0] < interval and (done != of or not of):
                return
            last[0] = now
        counts(phase, done, of, size, size_of)

    return call


class GrowingFile:
    """A file another thread is still writing: readers block until bytes arrive or it ends."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._cond = threading.Condition()
        self._writes = 0
        self._state = "growing"  # → "complete" | "abandoned"

    def written(self) -> None:
        """The writer appended something."""
        with self._cond:
            self._writes += 1
            self._cond.notify_all()

    def finish(self, complete: bool) -> None:
        """The writer is done: ``complete`` (flushed to the end) or abandoned."""
        with self._cond:
            self._state = "complete" if complete else "abandoned"
            self._cond.notify_all()

    def read_at(self, size: int, offset: int) -> bytes:
        """Between 1 and ``size`` bytes at ``offset`` (``b""`` at the end of a complete file),
        waiting while the file grows. Raises OperationFailed once the writer gave up."""
        while True:
            with self._cond:
                seen, state = self._writes, self._state
            if state == "abandoned":
                raise OperationFailed("the archive was abandoned while being read")
            data = os.pread(self._fd, size, offset)
            if data or state == "complete":
                return data
            with self._cond:
                self._cond.wait_for(partial(self._moved, seen, state), 1.0)

    def read_exact(self, size: int, offset: int) -> bytearray:
        """``size`` bytes at ``offset`` in one buffer, fewer only where the file ends."""
        buffer = bytearray(size)
        done = 0
        with memoryview(buffer) as view:
            while done < size:
                data = self.read_at(size - done, offset + done)
                if not data:
                    break
                view[done : done + len(data)] = data
                done += len(data)
        del buffer[done:]
        return buffer

    def _moved(self, writes: int, state: str) -> bool:
        return self._writes != writes or self._state != state

    def reader(self) -> GrowingReader:
        """A sequential reader from the start."""
        return GrowingReader(self)

    def close(self) -> None:
        os.close(self._fd)


class GrowingReader:
    """``read(n)`` over a :class:`GrowingFile`, for :func:`verify_archive`."""

    def __init__(self, source: GrowingFile) -> None:
        self._source = source
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read_at(size if size > 0 else 8 * MiB, self._offset)
        self._offset += len(data)
        return data


class _NotifyingSink:
    """What the archive writer writes to: the staged file, each write announced to readers.

    It writes through its own descriptor rather than the stage's ``write``, which would hash
    the archive a second time (the archive writer already does); the stage still fsyncs and
    renames it on commit.
    """

    def __init__(self, path: Path, growing: GrowingFile) -> None:
        self._file = open(os.open(path, os.O_WRONLY), "wb", buffering=MiB)  # noqa: SIM115
        self._growing = growing

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        self._growing.written()
        return written

    def close(self) -> None:
        """Flush what is buffered (readers see it) and close the descriptor."""
        self._file.close()
        self._growing.written()


@dataclass
class Upload:
    """Where the archive goes in the S3 tier; ``error`` is set if the copy failed."""

    client: S3Client
    bucket: str
    key: str
    etag: str = ""
    error: str | None = None


@dataclass
class Built:
    """What :func:`build_archive` produced (the local file is committed; no manifest yet)."""

    archive: ArchiveResult
    fetch: FetchOutcome
    verify: VerifyResult | None
    listed: int
    listed_bytes: int
    steps: list[StepRecord] = field(default_factory=list)


def _info(listed: ListedObject, head: ObjectHead) -> ObjectInfo:
    return ObjectInfo(
        key=listed.key,
        size=head.size,
        etag=head.etag or listed.etag,
        content_type=head.content_type,
        metadata=head.metadata,
        last_modified=listed.last_modified,
    )


def _upload(growing: GrowingFile, upload: Upload, counts: Callable[[int], None]) -> None:
    """Multipart-upload the growing file; parts read as soon as they are complete."""
    client = upload.client
    first = growing.read_exact(UPLOAD_PART, 0)
    if len(first) < UPLOAD_PART:
        upload.etag = client.put_object(
            upload.bucket, upload.key, first, content_type="application/gzip"
        )
        counts(len(first))
        return
    upload_id = client.create_multipart(upload.bucket, upload.key, content_type="application/gzip")
    try:
        with ThreadPoolExecutor(UPLOADS_IN_FLIGHT, thread_name_prefix="archive-upload") as pool:
            parts: list[Future[str]] = []
            number, data, sent = 1, first, 0
            while data:
                while sum(not f.done() for f in parts) >= UPLOADS_IN_FLIGHT:
                    next(f for f in parts if not f.done()).exception()
                parts.append(
                    pool.submit(
                        client.upload_part, upload.bucket, upload.key, upload_id, number, data
                    )
                )
                counts(number * UPLOAD_PART)
                sent += len(data)
                data = growing.read_exact(UPLOAD_PART, number * UPLOAD_PART)
                number += 1
            etags = [f.result() for f in parts]
        upload.etag = client.complete_multipart(upload.bucket, upload.key, upload_id, etags,
                                                size=sent)
    except BaseException:
        client.abort_multipart(upload.bucket, upload.key, upload_id)
        raise


def build_archive(
    client: S3Client,
    bucket: str,
    objects: list[ListedObject],
    sink: LocalWriter,
    *,
    upload: Upload | None,
    spool_dir: Path,
    workers: int = 16,
    clock: Clock = utc_now,
    counts: CountsFn = no_counts,
    verify: bool = True,
) -> Built:
    """Archive ``objects`` of ``bucket`` into ``sink`` (committed on success; aborted by the
    caller otherwise), verifying it and copying it to ``upload`` while it is written.

    Upload trouble is recorded in ``upload.error``, never raised. Raises DependencyDown (the
    source S3 is unreachable), IntegrityError (verification failed), OperationFailed.
    """
    build = _Build(GrowingFile(sink.temp), upload, counts, StepTimer(clock))
    total = sum(o.size for o in objects)
    staged: _NotifyingSink | None = None
    try:
        staged = _NotifyingSink(sink.temp, build.growing)
        # With verification the archive is hashed once, as read back from the disk.
        with ArchiveWriter(
            cast(BinaryIO, staged), spool_dir=spool_dir, clock=clock, hash_output=not verify
        ) as writer:
            fetched = fetch_objects(
                client,
                bucket,
                objects,
                lambda listed, head, chunks: writer.add(
                    _info(listed, head), cast(Iterable[bytes], chunks)
                ),
                workers=workers,
                progress=lambda n, b: counts("fetching", n, len(objects), b, total),
            )
            build.steps.done("fetch", f"{fetched.fetched} objects, {fetched.bytes} bytes; "
                             f"{len(fetched.missing)} deleted since the listing")
            build.follow(verify)
            result = writer.close()
        staged.close()
        sink.commit()
        build.growing.finish(complete=True)
        build.steps.done("archive", f"{result.archive_size} bytes written, fsynced")
        result, verified = build.checked(result)
        return Built(result, fetched, verified, len(objects), total, build.steps.steps)
    except BaseException:
        build.cancel()
        raise
    finally:
        build.readers.shutdown(wait=True)
        if staged is not None:
            with contextlib.suppress(OSError, ValueError):
                staged.close()
        build.growing.close()


class _Build:
    """The archive being written and the two readers that follow it: the verification and
    the S3 copy (each recorded as a step once the archive is committed)."""

    def __init__(self, growing: GrowingFile, upload: Upload | None, counts: CountsFn,
                 steps: StepTimer) -> None:
        self.growing, self.upload, self.counts, self.steps = growing, upload, counts, steps
        self.readers = ThreadPoolExecutor(2, thread_name_prefix="archive-read")
        self.verifying: Future[VerifyResult] | None = None
        self.copying: Future[None] | None = None

    def follow(self, verify: bool) -> None:
        """Start the readers (the objects are all in: only the archive's end is to come)."""
        self.steps.start()
        if verify:
            self.verifying = self.readers.submit(verify_archive,
                                                 cast(BinaryIO, self.growing.reader()))
        if self.upload is not None:
            self.copying = self.readers.submit(
                _upload, self.growing, self.upload,
                lambda b: self.counts("uploading", 0, 0, b, 0))

    def checked(self, result: ArchiveResult) -> tuple[ArchiveResult, VerifyResult | None]:
        """Wait for the readers: the archive's sha256 as read back (IntegrityError when the
        read-back differs), the upload's error recorded in ``upload.error``."""
        verified = self.verifying.result() if self.verifying is not None else None
        if verified is not None:
            if verified.archive_size != result.archive_size:
                raise IntegrityError("the archive read back differs from the one written")
            result = result.model_copy(update={"archive_sha256": verified.archive_sha256})
            self.steps.done("verify", f"{verified.objects} objects, sha256 each")
        if self.copying is not None and self.upload is not None:
            try:
                self.copying.result()
            except AutographError as exc:
                self.upload.error = exc.message
            self.steps.done("upload", self.upload.error
                            or f"s3://{self.upload.bucket}/{self.upload.key}")
        return result, verified

    def cancel(self) -> None:
        """The archive failed: readers stop at its end, what was not started is dropped."""
        self.growing.finish(complete=False)
        for future in (self.verifying, self.copying):
            if future is not None:
                future.cancel()
