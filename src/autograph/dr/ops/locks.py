"""Cross-process coordination under the backup folder (``BACKUPS/.locks/``), with ``fcntl``.

- :func:`acquire` — one operation per kind (``database``, ``bucket``) at a time, across every
  process sharing the backup folder (gateway workers, CLI). A second one gets :class:`Conflict`
  (HTTP 409) naming what is running. The lock is an open file descriptor: it is released when
  the holder releases it or dies, so a crash never leaves a stale lock.
- :func:`mark_busy` / :func:`busy_names` — the backups being restored or verified right now;
  retention and delete consult it and leave them alone.
- :func:`use_leases` — with ``AUTOGRAPH_LEASES=cluster`` every lock also takes a lease that other
  hosts see (:mod:`leases`), for gateways that share no backup folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from autograph.clock import isoformat, utc_now
from autograph.errors import Conflict

LOCKS_DIR = ".locks"
Take = Callable[[str, str], Any]  # (name, operation) -> a lease with release(); Conflict if held
_take_lease: Take | None = None


def use_leases(take: Take | None) -> None:
    """Make every lock of this process also take a lease across hosts (None: this host only)."""
    global _take_lease
    _take_lease = take


def _locks_dir(backups_dir: Path) -> Path:
    folder = backups_dir / LOCKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class OperationLock:
    """A held per-kind operation lock; ``release`` (or leaving the ``with``) frees it.

    It may be released from another thread than the one that acquired it (the API acquires
    before answering 202 and hands the lock to the background job).
    """

    def __init__(self, fd: int, kind: str, operation: str, lease: Any = None) -> None:
        self._fd: int | None = fd
        self.kind = kind
        self.operation = operation
        self._lease = lease

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._lease is not None:
                self._lease.release()
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> OperationLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class LentLock(OperationLock):
    """A held lock lent to a callee that releases what it is handed (several restores of one
    recovery under one lock): its ``release`` does nothing; the owner releases the lock."""

    def __init__(self, owner: OperationLock) -> None:
        super().__init__(-1, owner.kind, owner.operation)
        self._fd = None
        self._owner = owner

    @property
    def held(self) -> bool:
        return self._owner.held

    def release(self) -> None:
        """Nothing: the owner releases the lock."""


def acquire(backups_dir: Path, kind: str, operation: str, target: str = "") -> OperationLock:
    """Take the ``kind`` lock for ``operation`` (e.g. ``"restore"``) without waiting.

    Raises Conflict (409) with who holds it when another operation of that kind is running.
    """
    path = _locks_dir(backups_dir) / f"{kind}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise Conflict(
            f"a {kind} {holder.get('operation', 'operation')}"
            + (f" of {holder['target']}" if holder.get("target") else "")
            + f" is already running (pid {holder.get('pid', '?')}, since "
            f"{holder.get('since', '?')}); only one {kind} backup operation runs at a time"
        ) from None
    lease = None
    if _take_lease is not None:
        try:
            lease = _take_lease(kind, operation + (f" of {target}" if target else ""))
        except Conflict as exc:
            os.close(fd)
            raise Conflict(f"a {kind} operation is already running on another host "
                           f"({exc.message}); only one {kind} backup operation runs at a time"
                           ) from None
    record = {"operation": operation, "target": target, "pid": os.getpid(),
              "since": isoformat(utc_now())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return OperationLock(fd, kind, operation, lease)


@contextmanager
def held_or_taken(held: OperationLock | None,
                  take: Callable[[], OperationLock]) -> Iterator[OperationLock]:
    """The lock the caller already holds (taken before answering 202), or one taken now
    (Conflict if busy); released when the block ends."""
    lock = held or take()
    try:
        yield lock
    finally:
        lock.release()


def _read_holder(fd: int) -> dict[str, str]:
    try:
        data = os.pread(fd, 4096, 0)
        return dict(json.loads(data.decode())) if data else {}
    except (OSError, ValueError):
        return {}


def holder(backups_dir: Path, kind: str) -> dict[str, str] | None:
    """What holds the ``kind`` lock right now (operation, target, pid, since), or None."""
    path = backups_dir / LOCKS_DIR / f"{kind}.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        return None
    finally:
        os.close(fd)


@contextmanager
def mark_busy(backups_dir: Path, kind: str, name: str, why: str) -> Iterator[None]:
    """Mark backup ``name`` as busy (being restored or verified) for the ``with`` block."""
    folder = _locks_dir(backups_dir) / "busy"
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind}@{name}@{secrets.token_hex(4)}"  # "@" never occurs in names
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"why": why, "pid": os.getpid()}).encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def busy_names(backups_dir: Path, kind: str) -> set[str]:
    """Names of the ``kind`` backups busy right now in any process (stale marks are removed)."""
    folder = backups_dir / LOCKS_DIR / "busy"
    if not folder.is_dir():
        return set()
    names: set[str] = set()
    for path in folder.iterdir():
        parts = path.name.split("@")
        if len(parts) != 3 or parts[0] != kind:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            names.add(parts[1])
        else:
            path.unlink(missing_ok=True)  # its holder died without cleaning up
        finally:
            os.close(fd)
    return names
