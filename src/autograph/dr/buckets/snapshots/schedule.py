"""The gateway's snapshot loop: each application bucket snapshotted every
``snapshot_interval_seconds``, then the snapshots thinned.

When a bucket is due is derived from its newest snapshot, so a restart neither repeats nor
skips one, and with several gateways the snapshot lock lets only one take it (the others find
it taken and wait for the next round).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from autograph.dr.buckets.snapshots.store import parse_name
from autograph.errors import AutographError, Conflict

if TYPE_CHECKING:
    from autograph.dr.buckets.snapshots.manager import SnapshotManager

log = logging.getLogger("autograph.dr.snapshots")
MIN_WAIT = 1.0


def run_due(manager: SnapshotManager, interval: float) -> float:
    """Snapshot every bucket that is due, prune when one was taken; return the seconds until
    the next one is due. A failure is logged (and alerted through the hooks) and retried
    at the next interval."""
    waits: list[float] = []
    taken = 0
    for bucket in manager.settings.app_buckets:
        try:
            lock = manager.acquire("snapshot", bucket)
        except Conflict:
            log.info("snapshot of %s skipped: another snapshot operation is running", bucket)
            waits.append(interval)
            continue
        try:  # decided under the lock: another gateway may have just taken it
            remaining = _remaining(manager, bucket, interval)
            if remaining > 0:
                waits.append(remaining)
                continue
            result = manager.take(bucket, lock=lock)
            taken += 1
            log.info("snapshot %s: %d objects, %d new (%d bytes) in %.1f s%s",
                     result.snapshot.name, len(result.snapshot.objects),
                     result.snapshot.new_blobs, result.snapshot.new_bytes,
                     result.duration_seconds,
                     f"; S3 copy failed: {result.s3_error}" if result.s3_error else "")
        except AutographError as exc:
            log.warning("snapshot of %s failed: %s", bucket, exc.message)
        finally:
            lock.release()
        waits.append(interval)
    if taken:
        try:
            report = manager.prune()
            if report.removed or report.errors:
                log.info("snapshots pruned: %d removed, blobs removed %s%s",
                         len(report.removed), report.blobs_removed,
                         f"; errors: {report.errors}" if report.errors else "")
        except Conflict:
            pass
        except AutographError as exc:
            log.warning("snapshot pruning failed: %s", exc.message)
    return max(MIN_WAIT, min(waits) if waits else interval)


def _remaining(manager: SnapshotManager, bucket: str, interval: float) -> float:
    """Seconds until ``bucket`` is due (0 or less: now)."""
    latest = manager.latest(bucket)
    if latest is None:
        return 0.0
    return interval - (manager.clock() - parse_name(latest)[1]).total_seconds()


def loop(manager: SnapshotManager, interval: float, stop: threading.Event) -> None:
    """Run :func:`run_due` until ``stop`` is set."""
    while not stop.is_set():
        try:
            wait = run_due(manager, interval)
        except Exception:  # the loop must outlive any one failure
            log.exception("snapshot round failed")
            wait = interval
        stop.wait(wait)
