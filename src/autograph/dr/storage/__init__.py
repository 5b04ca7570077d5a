"""Where backup files live: the ``BackupStore`` protocol, implemented by ``local`` and ``s3``.

A store is a flat namespace of keys (file names such as ``NAME.dump``) under a root (a folder,
or a bucket and prefix). Writes are streaming and atomic: ``writer(key)`` yields a sink whose
bytes are hashed (sha256) on the way and become visible under ``key`` only when the block exits
cleanly; on an exception nothing is left under ``key``. Errors: NotFound for a missing key,
DependencyDown when the server or disk is unreachable, OperationFailed for anything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from autograph.errors import IntegrityError, NotFound

CHUNK = 1 << 20

ByteProgress = Callable[[int], None] | None
"""Called with the number of bytes copied so far."""


@dataclass(frozen=True)
class StoredObject:
    """A key in a store: its size, modification time, and sha256 when known."""

    key: str
    size: int
    modified: datetime | None = None
    sha256: str | None = None


class Sink(Protocol):
    """The writable side of ``BackupStore.writer``: bytes in, hashed on the way."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; return how many were taken."""
        ...

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    def hexdigest(self) -> str:
        """sha256 of the bytes written so far."""
        ...


class BackupStore(Protocol):
    """One tier of backup storage."""

    tier: str
    """``"local"`` or ``"s3"``."""

    def describe(self) -> str:
        """Where the store is, for messages (``/var/backups/database``, ``s3://b/prefix/``)."""
        ...

    def writer(self, key: str) -> AbstractContextManager[Sink]:
        """Stream bytes to ``key``: committed on clean exit, discarded on an exception."""
        ...

    def put(self, key: str, source: Path | BinaryIO, expected_sha256: str | None = None,
            progress: ByteProgress = None) -> StoredObject:
        """Copy a file or readable stream to ``key`` (atomic, hashed on the way).

        Raises IntegrityError (and stores nothing) when ``expected_sha256`` does not match.
        """
        ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A readable binary stream of ``key``. Raises NotFound."""
        ...

    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every key starting with ``prefix``, sorted by key."""
        ...

    def stat(self, key: str) -> StoredObject:
        """Size and time of ``key``. Raises NotFound."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...


class HashingCounter:
    """sha256 and byte count of a stream, fed chunk by chunk."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class HashedWriter:
    """What every store's sink shares: the sha256 and size of what was written (a
    :class:`HashingCounter` in ``_counter``), and, used as a context manager, ``commit`` on a
    clean exit and ``abort`` on an exception."""

    _counter: HashingCounter

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._counter.size

    def hexdigest(self) -> str:
        """sha256 of the bytes written so far."""
        return self._counter.hexdigest()

    def commit(self) -> Any:
        """Make the bytes visible under the key."""
        raise NotImplementedError

    def abort(self) -> None:
        """Leave nothing under the key."""
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return None


def fill(sink: Sink, key: str, source: Path | BinaryIO, expected_sha256: str | None = None,
         progress: ByteProgress = None) -> None:
    """Copy a file or stream into ``sink`` (``progress(bytes_so_far)``). Raises IntegrityError
    when the bytes' sha256 is not ``expected_sha256``; the caller then discards the sink."""
    with readable(source) as stream:
        while chunk := stream.read(CHUNK):
            sink.write(chunk)
            if progress is not None:
                progress(sink.size)
    if expected_sha256 and sink.hexdigest() != expected_sha256:
        raise IntegrityError(
            f"{key}: sha256 {sink.hexdigest()} does not match expected {expected_sha256}")


def sha256_of(stream: BinaryIO, progress: ByteProgress = None) -> tuple[str, int]:
    """Read a stream to its end; return (sha256 hex, size). ``progress(bytes_so_far)``."""
    counter = HashingCounter()
    while chunk := stream.read(CHUNK):
        counter.update(chunk)
        if progress is not None:
            progress(counter.size)
    return counter.hexdigest(), counter.size


@contextmanager
def readable(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    """Open a path for reading (NotFound if missing), or pass a stream through unchanged."""
    if isinstance(source, Path):
        try:
            handle = open(source, "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(f"{source} not found") from None
        with handle:
            yield handle
    else:
        yield source
