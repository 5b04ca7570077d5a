"""The primary tier: a folder on local disk.

Writes go to a hidden temporary name in the same folder (``.KEY.partial-XXXX``), are fsynced,
renamed over ``KEY`` and the folder is fsynced: a reader sees the whole file or nothing. Files
are created mode 0600 (backups hold user data). Keys are plain file names, never paths.
"""

from __future__ import annotations

import builtins
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from autograph.dr.storage import (
    CHUNK,
    ByteProgress,
    HashedWriter,
    HashingCounter,
    StoredObject,
    fill,
)
from autograph.errors import NotFound, OperationFailed

PARTIAL_MARK = ".partial-"


def _check_key(key: str) -> str:
    if not key or key.startswith(".") or "/" in key or "\\" in key or "\0" in key:
        raise OperationFailed(f"invalid storage key {key!r}")
    return key


def _disk_error(exc: OSError, what: str) -> OperationFailed:
    if exc.errno == errno.ENOSPC:
        return OperationFailed(f"{what}: no space left on the backup disk")
    return OperationFailed(f"{what}: {exc.strerror or exc}")


class LocalWriter(HashedWriter):
    """A temporary file that becomes ``KEY`` on ``commit``; hashes what is written."""

    def __init__(self, root: Path, key: str) -> None:
        self.final = root / key
        self.temp = root / f".{key}{PARTIAL_MARK}{secrets.token_hex(4)}"
        self._counter = HashingCounter()
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _disk_error(exc, f"cannot write {self.final}") from None
        self._file = os.fdopen(fd, "wb", buffering=CHUNK)
        self.result: StoredObject | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes (hashed on the way)."""
        self._counter.update(data)
        try:
            return self._file.write(data)
        except OSError as exc:
            raise _disk_error(exc, f"cannot write {self.final}") from None

    def commit(self) -> StoredObject:
        """fsync, rename over the final name, fsync the folder."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp, self.final)
            fsync_dir(self.final.parent)
        except OSError as exc:
            self.abort()
            raise _disk_error(exc, f"cannot write {self.final}") from None
        self.result = StoredObject(self.final.name, self.size, datetime.now(UTC),
                                   self.hexdigest())
        return self.result

    def abort(self) -> None:
        """Close and remove the temporary file."""
        self._file.close()
        self.temp.unlink(missing_ok=True)

    def __enter__(self) -> LocalWriter:
        return self


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    """A BackupStore over one folder (created on first write)."""

    tier = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """The file behind ``key`` (local tier only: pg_restore reads it directly)."""
        return self.root / _check_key(key)

    def writer(self, key: str) -> LocalWriter:
        return LocalWriter(self.root, _check_key(key))

    def put(self, key: str, source: Path | BinaryIO, expected_sha256: str | None = None,
            progress: ByteProgress = None) -> StoredObject:
        with self.writer(key) as sink:
            fill(sink, key, source, expected_sha256, progress)
        assert sink.result is not None
        return sink.result

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            handle = open(self.path(key), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(f"{key} not found in {self.root}") from None
        except OSError as exc:
            raise _disk_error(exc, f"cannot read {self.root / key}") from None
        with handle:
            yield handle

    def list(self, prefix: str = "") -> list[StoredObject]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _disk_error(exc, f"cannot list {self.root}") from None
        found = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.startswith(prefix):
                continue
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found.append(StoredObject(entry.name, info.st_size,
                                          datetime.fromtimestamp(info.st_mtime, UTC)))
        return found

    def stat(self, key: str) -> StoredObject:
        try:
            info = self.path(key).stat()
        except FileNotFoundError:
            raise NotFound(f"{key} not found in {self.root}") from None
        return StoredObject(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _disk_error(exc, f"cannot delete {self.root / key}") from None

    def partials(self) -> builtins.list[Path]:
        """Temporary files left by interrupted writes (only safe to remove under the lock)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if PARTIAL_MARK in p.name)

    def free_bytes(self) -> int:
        """Free space on the store's disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free
