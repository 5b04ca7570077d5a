"""Retention policy: which backups to keep and why (restic ``forget --keep-*`` semantics).

Pure: no I/O, the clock is an argument. Rules, ORed: ``last`` keeps the N newest backups;
``within`` keeps every backup at most that long before ``now`` (restic measures from the newest
backup; here from ``now``, so a stalled producer does not stretch the window); ``hourly``,
``daily``, ``weekly`` and ``monthly`` keep the newest backup of each clock hour / calendar day /
ISO week / month (UTC), for the N most recent periods that have a backup. On top of the rules
some backups are never removed: manual and pinned ones, one being restored or verified (busy),
the newest verified one, and any dated after ``now`` (clock skew: its period cannot be placed
safely).

Like restic, protected backups still take part in the rules: a manual backup that is the newest of
its day fills that day's slot. One policy model serves every kind: database dumps and bucket
archives (daily/weekly/monthly) and bucket snapshots (last/within/hourly/daily).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from autograph.errors import InvalidInput

PROTECTED_TAGS: dict[str, str] = {"manual": "manual backup", "pinned": "pinned"}


@dataclass(frozen=True)
class RetentionPolicy:
    """How many backups, how long, and how many hourly, daily, weekly and monthly periods to
    keep; 0 disables a rule.

    Raises InvalidInput for a negative count or duration.
    """

    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    hourly: int = 0
    within: timedelta = timedelta(0)
    last: int = 0

    def __post_init__(self) -> None:
        for rule, count in (("last", self.last), *self.counts()):
            if count < 0:
                raise InvalidInput(f"retention: keep-{rule} must be 0 or more, got {count}")
        if self.within < timedelta(0):
            raise InvalidInput(f"retention: keep-within must be 0 or more, got {self.within}")

    def counts(self) -> tuple[tuple[str, int], ...]:
        """Return the period rules ``((rule, count), …)`` in the order reasons are written."""
        return (("hourly", self.hourly), ("daily", self.daily), ("weekly", self.weekly),
                ("monthly", self.monthly))

    @property
    def is_empty(self) -> bool:
        """True when no rule is set (such a policy removes nothing, as restic does)."""
        return not (self.last or self.within or any(count for _, count in self.counts()))


DATABASE_POLICY = RetentionPolicy(daily=7, weekly=4, monthly=12)
BUCKET_POLICY = RetentionPolicy(weekly=4, monthly=12)


@dataclass(frozen=True)
class Candidate:
    """What retention needs to know about one backup.

    ``created_at`` must be timezone-aware; ``busy`` means being restored or verified right now.
    """

    name: str
    created_at: datetime
    tags: frozenset[str]
    verified: bool
    busy: bool = False


@dataclass(frozen=True)
class Decision:
    """Keep or remove one backup, with every reason that applies (never empty)."""

    name: str
    keep: bool
    reasons: tuple[str, ...]


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


PERIODS: dict[str, Callable[[datetime], str]] = {
    "hourly": _hour,
    "daily": _day,
    "weekly": _iso_week,
    "monthly": _month,
}
PERIOD_NOUNS = {"hourly": "hours", "daily": "days", "weekly": "weeks", "monthly": "months"}


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"retention: {what} has no timezone: {moment.isoformat()}")
    return moment.astimezone(UTC)


def _newest_first(candidates: Sequence[Candidate]) -> list[tuple[Candidate, datetime]]:
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.name in seen:
            raise InvalidInput(f"retention: backup name {candidate.name!r} appears twice")
        seen.add(candidate.name)
    dated = [(c, _utc(c.created_at, f"backup {c.name!r}")) for c in candidates]
    return sorted(dated, key=lambda pair: (pair[1], pair[0].name), reverse=True)


def duration_text(span: timedelta) -> str:
    """``span`` as days, hours, minutes and seconds: ``1h``, ``2d12h``, ``90s`` -> ``1m30s``."""
    seconds = int(span.total_seconds())
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _last_and_within(ordered: list[tuple[Candidate, datetime]], policy: RetentionPolicy,
                     now: datetime, kept: dict[str, list[str]],
                     dropped: dict[str, list[str]]) -> None:
    """The ``last`` rule (the N newest) and the ``within`` rule (at most that old, boundary
    included), newest first; backups dated after ``now`` take part in neither."""
    past = [(c, created) for c, created in ordered if created <= now]
    if policy.last:
        for position, (candidate, _) in enumerate(past, start=1):
            if position <= policy.last:
                kept[candidate.name].append(f"last ({position} of {policy.last})")
            else:
                dropped[candidate.name].append(f"not among the {policy.last} newest")
    if policy.within:
        window = duration_text(policy.within)
        for candidate, created in past:
            if now - created <= policy.within:
                kept[candidate.name].append(f"within the last {window}")
            else:
                dropped[candidate.name].append(f"older than {window}")


def _rule_reasons(
    ordered: list[tuple[Candidate, datetime]], policy: RetentionPolicy, now: datetime
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Walk newest first; per rule keep the first backup seen in each new period, N times.

    Returns (reasons a rule keeps it, reasons a rule lets it go), both by backup name.
    """
    kept: dict[str, list[str]] = {c.name: [] for c, _ in ordered}
    dropped: dict[str, list[str]] = {c.name: [] for c, _ in ordered}
    _last_and_within(ordered, policy, now, kept, dropped)
    for rule, count in policy.counts():
        if count == 0:
            continue
        period_of = PERIODS[rule]
        holder: dict[str, str] = {}  # period -> name of the backup kept for it
        for candidate, created in ordered:
            if created > now:
                continue
            period = period_of(created)
            if period in holder:
                dropped[candidate.name].append(f"{rule} {period} kept by newer {holder[period]}")
            elif len(holder) < count:
                holder[period] = candidate.name
                kept[candidate.name].append(f"{rule} {period} ({len(holder)} of {count})")
            else:
                noun = PERIOD_NOUNS[rule]
                dropped[candidate.name].append(
                    f"{rule} {period} is older than the {count} most recent {noun}"
                )
    return kept, dropped


def apply_policy(
    candidates: Sequence[Candidate], policy: RetentionPolicy, now: datetime
) -> list[Decision]:
    """Decide, for each backup of one kind, whether retention keeps it and why.

    Returns one Decision per candidate, newest first. Removal reasons say which rule let it go.
    Raises InvalidInput for duplicate names or timezone-naive datetimes.
    """
    now = _utc(now, "now")
    ordered = _newest_first(candidates)
    kept_by_rule, dropped_by_rule = _rule_reasons(ordered, policy, now)
    newest_verified = next((c.name for c, _ in ordered if c.verified), None)

    decisions: list[Decision] = []
    for candidate, created in ordered:
        protections = [label for tag, label in PROTECTED_TAGS.items() if tag in candidate.tags]
        if candidate.busy:
            protections.append("being restored or verified")
        if candidate.name == newest_verified:
            protections.append("newest verified backup")
        if created > now:
            protections.append("created after now (clock skew)")
        if policy.is_empty:
            protections.append("no retention rule set: nothing is removed")

        kept_by = kept_by_rule[candidate.name]
        if kept_by or protections:
            decisions.append(Decision(candidate.name, True, (*kept_by, *protections)))
        else:
            dropped_by = tuple(dropped_by_rule[candidate.name])
            decisions.append(Decision(candidate.name, False, dropped_by))
    return decisions
