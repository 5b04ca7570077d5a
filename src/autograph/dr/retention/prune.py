"""Prune: apply the retention policy (:mod:`autograph.dr.retention.policy`) to a catalog's
tiers.

Backups are grouped by kind and source (each bucket keeps its own weekly and monthly history) and
the pure :func:`~autograph.dr.retention.policy.apply_policy` decides; this module reads the
catalog, asks the busy registry which backups are being restored or verified, and deletes what the
policy lets go from every tier (manifest first). It never deletes while a tier is unreachable: the
copy there could not be removed, and the listing it decided on was incomplete. A dry run changes
nothing and reports the same decisions with their reasons.

Kept backups get the rule that keeps them as a tag (``daily``, ``weekly``, ``monthly``), so the
listing shows why each one is still there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from autograph.dr.catalog import Catalog
from autograph.dr.models import BackupEntry, Kind, Tier, validate_name
from autograph.dr.ops import locks
from autograph.dr.retention.policy import (
    BUCKET_POLICY,
    DATABASE_POLICY,
    PERIODS,
    Candidate,
    RetentionPolicy,
    apply_policy,
)
from autograph.errors import AutographError, DependencyDown, InvalidInput, NotFound

POLICIES: dict[Kind, RetentionPolicy] = {"database": DATABASE_POLICY, "bucket": BUCKET_POLICY}
PRUNED_KINDS: tuple[Kind, ...] = ("database", "bucket")
"""The kinds the plan gives a retention policy (base backups are kept with their WAL)."""
RULE_TAGS = frozenset(PERIODS)

Outcome = Literal["kept", "removed", "would remove", "not removed"]


class PruneDecision(BaseModel):
    """One backup: what the policy decided, why, and what was done about it."""

    kind: Kind
    source: str
    name: str
    created_at: datetime
    keep: bool
    reasons: list[str]
    locations: list[Tier] = Field(default_factory=list)
    outcome: Outcome
    error: str | None = None


class PruneReport(BaseModel):
    """Every decision of one prune (or dry run), newest first within each kind and source."""

    dry_run: bool
    at: datetime
    decisions: list[PruneDecision] = Field(default_factory=list)
    unreachable: dict[str, str] = Field(
        default_factory=dict, description="'kind/tier' -> why: nothing was deleted for that kind")
    blobs_removed: dict[str, int] = Field(
        default_factory=dict, description="snapshots: blobs no kept snapshot names, per tier")
    problems: list[str] = Field(
        default_factory=list, description="snapshots: why blobs were not (all) collected")

    @property
    def removed(self) -> list[str]:
        """Names deleted (or, in a dry run, that would be)."""
        return [d.name for d in self.decisions if d.outcome in ("removed", "would remove")]

    @property
    def failed(self) -> dict[str, str]:
        """Names the policy let go but that could not be deleted, with the reason."""
        return {d.name: d.error or "" for d in self.decisions if d.outcome == "not removed"}

    @property
    def errors(self) -> list[str]:
        """Every failure in one line each: deletions (``name: why``), then the problems."""
        return [f"{name}: {why}" for name, why in self.failed.items()] + self.problems


def candidate(entry: BackupEntry, busy: set[str]) -> Candidate:
    """What retention needs to know about one catalog entry."""
    return Candidate(
        name=entry.name,
        created_at=entry.created_at,
        tags=frozenset(entry.tags),
        verified=entry.verification.status == "passed",
        busy=entry.name in busy,
    )


def decide(backups: Sequence[BackupEntry], policy: RetentionPolicy, now: datetime,
           busy: set[str]) -> list[tuple[BackupEntry, bool, list[str]]]:
    """Apply ``policy`` to each source's backups separately; ``(entry, keep, reasons)`` each.

    Pure. Raises InvalidInput (from retention) for duplicate names or naive datetimes.
    """
    by_source: dict[str, list[BackupEntry]] = defaultdict(list)
    for entry in backups:
        by_source[entry.source].append(entry)
    results: list[tuple[BackupEntry, bool, list[str]]] = []
    for source in sorted(by_source):
        entries = {e.name: e for e in by_source[source]}
        for decision in apply_policy([candidate(e, busy) for e in entries.values()], policy,
                                     now):
            results.append((entries[decision.name], decision.keep, list(decision.reasons)))
    return results


def rule_tags(reasons: Sequence[str]) -> set[str]:
    """The retention rules (``daily``, ``weekly``, ``monthly``) named by keep reasons."""
    return {reason.split(" ", 1)[0] for reason in reasons} & RULE_TAGS


def prune_kind(catalog: Catalog, now: datetime, *, dry_run: bool = False,
               policy: RetentionPolicy | None = None) -> PruneReport:
    """Prune one kind's catalog (both tiers); return every decision and what happened.

    Unless ``dry_run``, holds the kind's operation lock while deciding and deleting, so no
    backup, restore or verify of that kind runs meanwhile. Raises Conflict (409) when another
    operation holds it. A backup that cannot be deleted is reported, not raised.
    """
    if policy is None and catalog.kind not in POLICIES:
        raise InvalidInput(f"no retention policy for {catalog.kind} backups")
    policy = policy or POLICIES[catalog.kind]
    report = PruneReport(dry_run=dry_run, at=now)
    if dry_run:
        _decide_and_apply(catalog, policy, now, report)
        return report
    with locks.acquire(catalog.backups_dir, catalog.kind, "prune"):
        _decide_and_apply(catalog, policy, now, report)
    return report


def _decide_and_apply(catalog: Catalog, policy: RetentionPolicy, now: datetime,
                      report: PruneReport) -> None:
    listing = catalog.list()
    for tier, why in listing.unreachable.items():
        report.unreachable[f"{catalog.kind}/{tier}"] = why
    busy = locks.busy_names(catalog.backups_dir, catalog.kind)
    blocked = ("not deleted: the " + ", ".join(sorted(listing.unreachable))
               + " tier is unreachable") if listing.unreachable else None
    for entry, keep, reasons in decide(listing.backups, policy, now, busy):
        decision = PruneDecision(
            kind=catalog.kind, source=entry.source, name=entry.name, created_at=entry.created_at,
            keep=keep, reasons=reasons, locations=list(entry.locations),
            outcome="kept" if keep else "would remove")
        if not report.dry_run:
            if keep:
                _retag(catalog, entry, reasons)
            elif blocked:
                decision.outcome, decision.error = "not removed", blocked
            else:
                _remove(catalog, decision)
        report.decisions.append(decision)


def _remove(catalog: Catalog, decision: PruneDecision) -> None:
    try:
        catalog.delete(decision.name)
    except AutographError as exc:
        decision.outcome, decision.error = "not removed", exc.message
    else:
        decision.outcome = "removed"


def _retag(catalog: Catalog, entry: BackupEntry, reasons: Sequence[str]) -> None:
    """Record which rules keep ``entry`` in its tags (best effort: a failure changes nothing)."""
    wanted = rule_tags(reasons)
    current = set(entry.tags)
    if current & RULE_TAGS == wanted:
        return
    try:
        catalog.update(entry.name, tags=sorted((current - RULE_TAGS) | wanted))
    except AutographError:
        return


def prune(catalogs: Sequence[Catalog], now: datetime, *, dry_run: bool = False,
          policies: Mapping[Kind, RetentionPolicy] | None = None) -> PruneReport:
    """Prune several kinds' catalogs; one report with every kind's decisions.

    Raises Conflict when a kind's lock is held by another operation (kinds pruned before it
    stay pruned).
    """
    report = PruneReport(dry_run=dry_run, at=now)
    for catalog in catalogs:
        policy = (policies or POLICIES).get(catalog.kind)
        part = prune_kind(catalog, now, dry_run=dry_run, policy=policy)
        report.decisions.extend(part.decisions)
        report.unreachable.update(part.unreachable)
    return report


def pin(catalogs: Sequence[Catalog], name: str, *, pinned: bool = True) -> BackupEntry:
    """Add (or with ``pinned=False`` remove) the ``pinned`` tag of backup ``name``, found in
    whichever of ``catalogs`` holds it; a pinned backup is never pruned.

    Holds the kind's lock while rewriting the manifest in every tier. Raises InvalidInput for
    a bad name or a name in several kinds, NotFound, Conflict (another operation running),
    DependencyDown (a tier holding it cannot be written).
    """
    validate_name(name)
    holders: list[Catalog] = []
    down: DependencyDown | None = None
    for catalog in catalogs:
        try:
            catalog.get(name)
        except NotFound:
            continue
        except DependencyDown as exc:  # not in the reachable tier of this kind
            down = exc
            continue
        holders.append(catalog)
    if not holders:
        raise down or NotFound(f"no backup named {name}")
    if len(holders) > 1:
        raise InvalidInput(f"backup name {name} exists in several kinds; choose one with --kind")
    catalog = holders[0]
    with locks.acquire(catalog.backups_dir, catalog.kind, "pin", name):
        entry = catalog.get(name)
        tags = set(entry.tags) | {"pinned"} if pinned else set(entry.tags) - {"pinned"}
        if tags == set(entry.tags):
            return entry
        return catalog.update(name, tags=sorted(tags))
