"""Pruning bucket snapshots with the one retention policy, then collecting the blobs no
snapshot names any more.

What to keep is decided per bucket by :func:`autograph.dr.retention.policy.apply_policy`, the
pure function that prunes every kind, with the snapshot policy of the settings: the newest
snapshot (``last`` 1), every snapshot of the last ``snapshot_keep_all_seconds`` (``within``),
then the newest of each hour for ``snapshot_keep_hourly`` hours and of each day for
``snapshot_keep_daily`` days that have one. Long-term history is the weekly archives' job
(SPEC §5). The report is the catalog's :class:`~autograph.dr.retention.prune.PruneReport` (kind
``snapshot``) plus the blobs collected. Blobs are collected under the snapshot lock, so no
snapshot being taken can name a blob this removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from autograph.config import Settings
from autograph.dr.buckets.snapshots.packs import PackedBlobs
from autograph.dr.buckets.snapshots.store import SnapshotStore, TierStores, merged, parse_name
from autograph.dr.models import Tier
from autograph.dr.retention.policy import Candidate, RetentionPolicy, apply_policy
from autograph.dr.retention.prune import PruneDecision, PruneReport
from autograph.errors import AutographError

TIER_ORDER: tuple[Tier, ...] = ("local", "s3", "offsite")


def snapshot_policy(settings: Settings) -> RetentionPolicy:
    """The snapshot retention of ``settings`` (the newest snapshot is always kept)."""
    return RetentionPolicy(last=1, within=timedelta(seconds=settings.snapshot_keep_all_seconds),
                           hourly=settings.snapshot_keep_hourly,
                           daily=settings.snapshot_keep_daily)


def decide(per_tier: dict[str, list[str]], buckets: Sequence[str], now: datetime,
           policy: RetentionPolicy) -> list[PruneDecision]:
    """One decision per snapshot of ``buckets`` (each bucket apart, newest first), with the
    tiers holding it. Pure."""
    holders = {tier: set(names) for tier, names in per_tier.items()}
    decisions: list[PruneDecision] = []
    for bucket in buckets:
        candidates = [Candidate(name, parse_name(name)[1], frozenset(), verified=False)
                      for name in merged(per_tier, bucket)]
        for decision in apply_policy(candidates, policy, now):
            decisions.append(PruneDecision(
                kind="snapshot", source=bucket, name=decision.name,
                created_at=parse_name(decision.name)[1], keep=decision.keep,
                reasons=list(decision.reasons),
                locations=[t for t in TIER_ORDER if decision.name in holders.get(t, ())],
                outcome="kept" if decision.keep else "would remove"))
    return decisions


def prune(store: SnapshotStore, buckets: tuple[str, ...], now: datetime,
          policy: RetentionPolicy, *, dry_run: bool = False) -> PruneReport:
    """Remove the snapshots ``policy`` lets go, then the blobs only they named.
    The caller holds the snapshot lock."""
    per_tier, _ = store.names()  # one listing for every bucket
    report = PruneReport(dry_run=dry_run, at=now, decisions=decide(per_tier, buckets, now,
                                                                   policy))
    if dry_run:
        return report
    deleted: set[str] = set()
    for decision in report.decisions:
        if decision.keep:
            continue
        try:
            store.delete(decision.name)
        except AutographError as exc:  # still there: its blobs stay referenced
            decision.outcome, decision.error = "not removed", exc.message
        else:
            decision.outcome = "removed"
            deleted.add(decision.name)
    referenced: set[str] = set()
    for name in merged(per_tier):
        if name in deleted:
            continue
        try:
            referenced.update(o.blob_key for o in store.load(name)[0].objects)
        except AutographError as exc:  # cannot tell what it names: collect nothing
            report.problems.append(f"{name}: {exc.message}; blobs not collected")
            return report
    for tier in store.tiers():
        try:
            report.blobs_removed[tier.name] = _collect(tier, referenced)
        except AutographError as exc:
            report.problems.append(f"{tier.name} blobs: {exc.message}")
            report.blobs_removed.setdefault(tier.name, 0)
    return report


def _collect(tier: TierStores, referenced: set[str]) -> int:
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
