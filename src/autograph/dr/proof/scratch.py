"""Scratch resources of restore tests: recognisable names, a disk guard, and leftovers removed.

Every scratch thing carries ``proof_scratch`` in its name — the database
``<db>__proof_scratch_<ts>``, the cluster folder ``DATA/postgres.proof_scratch_<ts>``, a
downloaded copy ``BACKUPS/.proof_scratch-…`` — so that a verification killed with SIGKILL (no
``finally`` runs) leaves nothing that the next start cannot find and remove. Only call
:func:`clean_leftovers` while holding the proof lock: no restore test is running then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from autograph.config import Settings
from autograph.dr.postgres.server import PgServer, derived_name
from autograph.errors import DependencyDown, InsufficientSpace

TAG = "proof_scratch"
CLUSTER_PREFIX = f"postgres.{TAG}_"
FILE_PREFIX = f".{TAG}-"


def database_name(live: str, stamp: str) -> str:
    """The scratch database for a dump restore test."""
    return derived_name(live, TAG, stamp)


def cluster_dir(settings: Settings, stamp: str) -> Path:
    """The scratch cluster's data folder (beside the live one: the server's user can reach it)."""
    return settings.data_dir / f"{CLUSTER_PREFIX}{stamp}"


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def ensure_room(settings: Settings, folder: Path, need_bytes: int, what: str) -> None:
    """Refuse (InsufficientSpace) when writing ``need_bytes`` into ``folder``'s disk would
    leave less free than ``backup_storage_min_free_bytes``: a restore test must never be
    what fills the disk the backups live on."""
    free = shutil.disk_usage(_existing(folder)).free
    floor = settings.backup_storage_min_free_bytes
    if free - need_bytes < floor:
        raise InsufficientSpace(
            f"{what} needs about {need_bytes} bytes in {folder}; {free} bytes are free and "
            f"{floor} must stay free (AUTOGRAPH_BACKUP_STORAGE_MIN_FREE_BYTES): not started")


def tree_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when missing)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def stop_cluster(folder: Path, timeout: float = 20.0) -> None:
    """Stop the postmaster running on ``folder`` (immediate shutdown: the copy is thrown
    away; then SIGKILL), if any.

    The pid comes from ``postmaster.pid`` and is signalled only when that process's command
    line names the folder (a recycled pid is left alone)."""
    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, ValueError, IndexError):
        return
    if str(folder).encode() not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        _reap(pid)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline + 5:
        _reap(pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def clean_leftovers(settings: Settings, server: PgServer | None) -> list[str]:
    """Remove every scratch resource an earlier (maybe killed) restore test left: clusters
    (stopped first), downloaded copies, scratch databases. Returns what was removed."""
    removed: list[str] = []
    if settings.data_dir.is_dir():
        for folder in sorted(settings.data_dir.glob(f"{CLUSTER_PREFIX}*")):
            stop_cluster(folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"cluster {folder.name}")
    if settings.backups_dir.is_dir():
        for path in settings.backups_dir.glob(f"{FILE_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed.append(f"file {path.name}")
    if server is not None:
        try:
            for name in server.databases(database_name(server.live_database, "")):
                server.drop_database(name)
                removed.append(f"database {name}")
        except DependencyDown:
            pass  # PostgreSQL down: nothing can use them; the next start tries again
    return removed
