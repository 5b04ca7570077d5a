"""Thinning bucket snapshots and collecting the blobs no snapshot names any more.

Per bucket: every snapshot of the last ``keep_all`` window, then the newest of each hour for the
``hourly`` most recent hours that have one, and the newest of each day for the ``daily`` most
recent days that have one; the newest snapshot is always kept. Long-term history is the weekly
archives' job (SPEC §5). Blobs are collected under the snapshot lock, so no snapshot being taken
can name a blob this removes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from autograph.dr.buckets.snapshots.packs import PackedBlobs
from autograph.dr.buckets.snapshots.store import SnapshotStore, Tier, merged, parse_name
from autograph.errors import AutographError


@dataclass(frozen=True)
class SnapshotPolicy:
    """How long every snapshot is kept, and how many hourly and daily ones after that."""

    keep_all: timedelta = timedelta(hours=1)
    hourly: int = 48
    daily: int = 14


def thin(names: list[str], now: datetime, policy: SnapshotPolicy) -> dict[str, str | None]:
    """``{name: reason kept, or None to remove}`` for one bucket's snapshot names. Pure."""
    dated = sorted(((parse_name(n)[1], n) for n in names), reverse=True)
    verdict: dict[str, str | None] = dict.fromkeys(names)
    if not dated:
        return verdict
    verdict[dated[0][1]] = "newest"
    for moment, name in dated:
        if now - moment <= policy.keep_all and verdict[name] is None:
            verdict[name] = f"within the last {policy.keep_all}"

    def newest_per(period: Callable[[datetime], object], count: int, label: str) -> None:
        seen: list[object] = []
        for moment, name in dated:
            key = period(moment)
            if key in seen:
                continue
            if len(seen) == count:
                return
            seen.append(key)
            if verdict[name] is None:
                verdict[name] = f"newest of its {label}"

    newest_per(lambda m: (m.date(), m.hour), policy.hourly, "hour")
    newest_per(lambda m: m.date(), policy.daily, "day")
    return verdict


@dataclass
class PruneReport:
    """What pruning decided and did."""

    decisions: dict[str, str | None]
    removed: list[str]
    blobs_removed: dict[str, int]
    errors: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"kept": {n: r for n, r in self.decisions.items() if r},
                "removed": self.removed, "blobs_removed": self.blobs_removed,
                "errors": self.errors}


def prune(store: SnapshotStore, buckets: tuple[str, ...], now: datetime,
          policy: SnapshotPolicy, *, dry_run: bool = False) -> PruneReport:
    """Remove the snapshots ``thin`` does not keep, then the blobs only they named.
    The caller holds the snapshot lock."""
    decisions: dict[str, str | None] = {}
    per_tier, _ = store.names()  # one listing for every bucket
    for bucket in buckets:
        decisions.update(thin(merged(per_tier, bucket), now, policy))
    removed = sorted(n for n, reason in decisions.items() if reason is None)
    report = PruneReport(decisions, removed, {}, [])
    if dry_run:
        return report
    deleted: set[str] = set()
    for name in removed:
        try:
            store.delete(name)
            deleted.add(name)
        except AutographError as exc:  # still there: its blobs stay referenced
            report.errors.append(f"{name}: {exc.message}")
    referenced: set[str] = set()
    for name in merged(per_tier):
        if name in deleted:
            continue
        try:
            referenced.update(o.blob_key for o in store.load(name)[0].objects)
        except AutographError as exc:  # cannot tell what it names: collect nothing
            report.errors.append(f"{name}: {exc.message}; blobs not collected")
            return report
    for tier in store.tiers():
        try:
            report.blobs_removed[tier.name] = _collect(tier, referenced)
        except AutographError as exc:
            report.errors.append(f"{tier.name} blobs: {exc.message}")
            report.blobs_removed.setdefault(tier.name, 0)
    return report


def _collect(tier: Tier, referenced: set[str]) -> int:
    """Delete the tier's blobs no snapshot names, except those stored after its newest index
    (the outbox replicator's: recovery to the protected point needs them); in the S3 tier,
    packs without an index too. Returns how many blobs went."""
    newest = max((o.modified for o in tier.index.list("snap_") if o.modified), default=None)
    unused = [blob.key for blob in tier.blobs.list()
              if blob.key not in referenced
              and not (newest is not None and blob.modified is not None
                       and blob.modified > newest)]
    if not isinstance(tier.blobs, PackedBlobs):
        for key in unused:
            tier.blobs.delete(key)
        return len(unused)
    loose = {o.key for o in tier.blobs.loose.list()}
    tier.blobs.delete_packed(unused)  # one index rewrite per pack, not one per blob
    for key in unused:
        if key in loose:
            tier.blobs.loose.delete(key)
    tier.blobs.collect_orphans()
    return len(unused)
