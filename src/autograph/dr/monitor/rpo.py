"""The RPO, judged once for the whole system against its continuous protection.

A daily dump is judged against its own schedule (:func:`status.source_status`), never against
the RPO: the RPO is what a recovery now would lose, and that comes from the newest protected
point of each part: the database (streamed WAL over a base backup, else the newest dump), the
objects (per bucket the newest snapshot or archive; the worst bucket counts), both lifted by
the consistent point the object replicator keeps, and the off-site tier's lag (a machine loss
loses what has not left). Pure: every age is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field


class RpoPart(BaseModel):
    """One part of the exposure: how old its newest protected point is, and from what."""

    name: str = Field(description="database, objects or offsite")
    age_seconds: float | None = Field(description="None: nothing protects it")
    protected_by: str
    met: bool


class RpoStatus(BaseModel):
    """What a recovery now would lose at worst, against the RPO target."""

    target_seconds: int
    met: bool
    exposure_seconds: float | None = Field(description="the worst part's age (None: a part "
                                                       "has no protection at all)")
    parts: list[RpoPart]


def _newest(*candidates: tuple[float | None, str]) -> tuple[float | None, str]:
    known = [(age, what) for age, what in candidates if age is not None]
    return min(known) if known else (None, "no copy")


def judge_rpo(target: int, *, wal_age: float | None, base_backup: bool,
              dump_age: float | None, buckets: Sequence[tuple[str, float | None, float | None]],
              consistent_age: float | None, offsite_lag: float | None,
              offsite_configured: bool) -> RpoStatus:
    """The RPO from each part's newest protected point. ``buckets``: ``(name, snapshot age,
    archive age)``; ``wal_age`` counts only over a ``base_backup``."""
    parts: list[RpoPart] = []
    db_age, db_by = _newest((wal_age if base_backup else None, "WAL stream"),
                            (dump_age, "newest dump"), (consistent_age, "consistent point"))
    parts.append(RpoPart(name="database", age_seconds=db_age, protected_by=db_by,
                         met=db_age is not None and db_age <= target))
    worst: tuple[float | None, str] | None = None
    for name, snapshot_age, archive_age in buckets:
        age, by = _newest((snapshot_age, "snapshot"), (archive_age, "archive"),
                          (consistent_age, "consistent point"))
        if worst is None or age is None or (worst[0] is not None and age > worst[0]):
            worst = (age, f"{by} of {name}")  # "no copy of exports" when unprotected
        if age is None:
            break
    if worst is not None:
        parts.append(RpoPart(name="objects", age_seconds=worst[0], protected_by=worst[1],
                             met=worst[0] is not None and worst[0] <= target))
    if offsite_configured:
        parts.append(RpoPart(name="offsite", age_seconds=offsite_lag,
                             protected_by="off-site lag" if offsite_lag is not None
                             else "unknown (store unreachable)",
                             met=offsite_lag is not None and offsite_lag <= target))
    ages = [p.age_seconds for p in parts]
    exposure = None if any(a is None for a in ages) else max(a for a in ages if a is not None)
    return RpoStatus(target_seconds=target, met=all(p.met for p in parts),
                     exposure_seconds=exposure, parts=parts)
