"""Streamed WAL off-site: ship completed segments in order, check the chain, fetch it back.

``pg_receivewal`` writes ``BACKUPS/wal/<folder>/`` (one folder per cluster, plus those retired by
point-in-time recoveries). A segment is *completed* when it loses its ``.partial`` suffix; the
server closes one at least every ``AUTOGRAPH_WAL_SWITCH_SECONDS`` (``archive_timeout``) while
anything is written, which bounds the off-site RPO. :class:`WalShipper` copies completed
segments (and timeline ``.history`` files) of every folder to ``wal/<folder>/`` off-site, in
name order, which is WAL order: each is hashed before the upload and the upload is checked
against that digest (and its size checked after), so a segment changing underneath or damaged
in transit is never recorded as shipped. Shipping stops at the first failure: what is off-site
is always a prefix of the local chain, and the backlog (everything after the watermark) ships
in order when the store is back. :func:`chain_check` reports gaps; :func:`fetch_wal` brings a
chain back, stopping at the first missing or damaged segment and saying so.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autograph.config import Settings
from autograph.dr.storage import sha256_of
from autograph.dr.storage.offsite import OffsiteStore, open_offsite
from autograph.dr.storage.s3 import S3Store
from autograph.errors import AutographError, ConfigError, DependencyDown, IntegrityError

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")
SEGMENTS_PER_LOG = 0x100  # 16 MiB segments: 2^32 / 2^24
WAL_PART_SIZE = 64 << 20  # above a segment's ciphertext: one request per segment


def wal_root(settings: Settings) -> Path:
    """The streamed WAL folders (as :func:`autograph.dr.postgres.walstream.wal_root`)."""
    return settings.backups_dir / "wal"


def shippable(name: str) -> bool:
    """A completed segment or a timeline history file."""
    return bool(SEGMENT.match(name) or HISTORY.match(name))


def completed(folder: Path) -> list[Path]:
    """Completed segments and history files of a folder, in WAL (name) order."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if shippable(p.name)), key=lambda p: p.name)


class FolderState(BaseModel):
    """The shipping state of one WAL folder."""

    folder: str
    watermark: str | None = Field(default=None, description="everything <= this is off-site")
    watermark_mtime: float | None = Field(default=None, description="its completion time")
    pending: int = 0
    oldest_pending_mtime: float | None = None
    error: str | None = None

    def lag_seconds(self, now: float) -> float:
        """How long completed WAL has been waiting to go off-site (0: none waiting)."""
        return 0.0 if self.oldest_pending_mtime is None else max(0.0, now -
                                                                 self.oldest_pending_mtime)


@dataclass
class WalShipper:
    """Ships the completed WAL of every folder under ``root``; one instance per process."""

    settings: Settings
    client: Any = None

    def __post_init__(self) -> None:
        self.states: dict[str, FolderState] = {}
        self._stores: dict[str, OffsiteStore] = {}
        self._synced: set[str] = set()

    def store(self, folder: str) -> OffsiteStore:
        if folder not in self._stores:
            store = open_offsite(self.settings, f"wal/{folder}", self.client)
            if store is None:
                raise ConfigError("no off-site tier configured (AUTOGRAPH_OFFSITE_S3_ENDPOINT)")
            if isinstance(store.inner, S3Store):  # a segment in one PUT (Content-MD5 checked)
                store.inner.part_size = WAL_PART_SIZE
            self._stores[folder] = store
        return self._stores[folder]

    def _sync_watermark(self, folder: str, state: FolderState) -> None:
        """Learn what is already off-site (once per folder and process: the store is the
        authority, so a restarted shipper neither re-sends nor skips)."""
        if folder in self._synced:
            return
        there = [o.key for o in self.store(folder).list() if shippable(o.key)]
        state.watermark = max(there) if there else None
        self._synced.add(folder)

    def ship_folder(self, folder: Path, *, ship: bool = True) -> FolderState:
        """Ship the folder's completed WAL past the watermark, in order; stop at a failure.
        With ``ship`` False (the store is down), only count what waits."""
        state = self.states.setdefault(folder.name, FolderState(folder=folder.name))
        state.error = None
        try:
            if not ship:
                raise DependencyDown("off-site store unreachable: shipping paused")
            self._sync_watermark(folder.name, state)
            for path in completed(folder):
                if state.watermark is not None and path.name <= state.watermark:
                    continue
                self._ship(folder.name, path)
                state.watermark, state.watermark_mtime = path.name, path.stat().st_mtime
        except (AutographError, OSError) as exc:
            state.error = exc.message if isinstance(exc, AutographError) else str(exc)
        waiting = [p for p in completed(folder)
                   if state.watermark is None or p.name > state.watermark]
        state.pending = len(waiting)
        state.oldest_pending_mtime = min((p.stat().st_mtime for p in waiting), default=None)
        return state

    def _ship(self, folder: str, path: Path) -> None:
        """One file: digest first, upload checked against it, stored size checked after."""
        with open(path, "rb") as handle:
            digest, size = sha256_of(handle)
        store = self.store(folder)
        stored = store.put(path.name, path, expected_sha256=digest)
        if store.stat(path.name).size != size or stored.size != size:
            store.delete(path.name)
            raise IntegrityError(f"{folder}/{path.name}: stored size does not match")

    def ship_all(self, *, ship: bool = True) -> list[FolderState]:
        """One pass over every folder (retired ones first, then live ones)."""
        root = wal_root(self.settings)
        folders = sorted((p for p in root.iterdir() if p.is_dir()),
                         key=lambda p: (".pre_pitr_" not in p.name, p.name)
                         ) if root.is_dir() else []
        return [self.ship_folder(folder, ship=ship) for folder in folders]


# Chain check and fetch ---------------------------------------------------------------------------

def _position(name: str) -> tuple[int, int]:
    """(timeline, absolute segment number) of a segment name."""
    timeline, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)
    return timeline, log * SEGMENTS_PER_LOG + seg


class ChainReport(BaseModel):
    """The off-site WAL of one folder: first, last, gaps (``after -> before`` pairs)."""

    folder: str
    segments: int = 0
    first: str | None = None
    last: str | None = None
    gaps: list[str] = Field(default_factory=list)
    damaged: list[str] = Field(default_factory=list)
    ok: bool = True


def chain_check(store: OffsiteStore, folder: str, *, deep: bool = False) -> ChainReport:
    """Check the off-site segments of ``folder`` follow one another (per timeline); with
    ``deep``, decrypt and authenticate each one too. Raises DependencyDown."""
    names = sorted(o.key for o in store.list() if SEGMENT.match(o.key))
    report = ChainReport(folder=folder, segments=len(names),
                         first=names[0] if names else None, last=names[-1] if names else None)
    for before, after in itertools.pairwise(names):
        (tl_a, pos_a), (tl_b, pos_b) = _position(before), _position(after)
        if tl_a == tl_b and pos_b != pos_a + 1:
            report.gaps.append(f"{before} -> {after}")
    if deep:
        for name in names:
            try:
                with store.open(name) as stream:
                    sha256_of(stream)
            except (IntegrityError, ConfigError) as exc:
                report.damaged.append(f"{name}: {exc.message}")
    report.ok = not report.gaps and not report.damaged
    return report


class FetchReport(BaseModel):
    """What :func:`fetch_wal` brought back, and where and why it stopped."""

    folder: str
    fetched: list[str] = Field(default_factory=list)
    stopped_at: str | None = Field(default=None, description="first segment not fetched")
    reason: str | None = None


def fetch_wal(store: OffsiteStore, folder: str, target: Path) -> FetchReport:
    """Download the off-site chain of ``folder`` into ``target`` (decrypted, authenticated),
    in order, up to the first gap or damaged segment: recovery can replay up to there and no
    further. Raises DependencyDown when the store is unreachable at the start."""
    names = sorted(o.key for o in store.list() if shippable(o.key))
    report = FetchReport(folder=folder)
    target.mkdir(parents=True, exist_ok=True)
    previous: tuple[int, int] | None = None
    for name in names:
        if SEGMENT.match(name):
            position = _position(name)
            if previous and position[0] == previous[0] and position[1] != previous[1] + 1:
                report.stopped_at, report.reason = name, f"gap in the WAL chain before {name}"
                break
        partial = target / f".{name}.fetching"
        try:
            with store.open(name) as stream, open(partial, "wb") as out:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)
        except (IntegrityError, ConfigError, DependencyDown) as exc:
            partial.unlink(missing_ok=True)
            report.stopped_at, report.reason = name, exc.message
            break
        partial.rename(target / name)
        report.fetched.append(name)
        if SEGMENT.match(name):
            previous = _position(name)
    return report



class SegmentCloser:
    """Closes the WAL segment being written once it holds writes ``wal_switch_seconds`` old.

    A quiet database may take hours to fill a 16 MiB segment, and only completed segments are
    shipped, so without this the off-site RPO would be unbounded. (PostgreSQL's own
    ``archive_timeout`` did not switch segments on this setup with WAL streamed by
    ``pg_receivewal``, archiving off or on; see the README.) The receiver's ``.partial`` file
    changes when WAL arrives; the first change after a switch starts the clock; when it runs
    out, ``pg_switch_wal()`` closes the segment and the receiver completes the file. An idle
    database is never switched (no change, no clock).
    """

    def __init__(self, switch: Any, seconds: float) -> None:
        """``switch()`` asks the server for ``pg_switch_wal()``; raises on failure."""
        self._switch = switch
        self._seconds = seconds
        self._seen: dict[str, tuple[str, float]] = {}
        self._dirty_since: dict[str, float] = {}

    def check(self, folder: Path, now: float) -> bool:
        """One look at ``folder``; True when a switch was requested."""
        if self._seconds <= 0 or not folder.is_dir():
            return False
        partials = sorted(p for p in folder.iterdir() if p.name.endswith(".partial"))
        if not partials:
            return False
        current = partials[-1]
        state = (current.name, current.stat().st_mtime)
        before = self._seen.get(folder.name)
        self._seen[folder.name] = state
        if before is None or before[0] != state[0]:
            self._dirty_since.pop(folder.name, None)  # first sight, or a new segment
            return False
        if state[1] != before[1]:
            self._dirty_since.setdefault(folder.name, now)  # first write: within one poll
        since = self._dirty_since.get(folder.name)
        if since is None or now - since < self._seconds:
            return False
        try:
            self._switch()
        except Exception:  # PostgreSQL down or restarting: nothing to close now
            return False
        self._dirty_since.pop(folder.name, None)
        return True
