"""Retention policy: restic ``forget`` semantics, protections, reasons (hypothesis + examples)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograph.dr.retention.policy import (
    BUCKET_POLICY,
    DATABASE_POLICY,
    Candidate,
    Decision,
    RetentionPolicy,
    apply_policy,
)
from autograph.errors import InvalidInput

ZONES = [UTC, timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=30))]
TAGS = ["scheduled", "manual", "pinned", "daily"]


def backup(
    name: str,
    at: datetime,
    *,
    tags: tuple[str, ...] = ("scheduled",),
    verified: bool = False,
    busy: bool = False,
) -> Candidate:
    return Candidate(name, at, frozenset(tags), verified, busy)


def kept_names(decisions: list[Decision]) -> set[str]:
    return {d.name for d in decisions if d.keep}


def by_name(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.name: d for d in decisions}


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Candidate], datetime]:
    """A random backup history (irregular gaps, same-instant pairs, tags) and a clock."""
    start = draw(st.datetimes(datetime(2024, 1, 1), datetime(2026, 6, 1), timezones=st.just(UTC)))
    gaps = draw(st.lists(st.integers(0, 24 * 45), min_size=0, max_size=60))
    candidates = []
    moment = start
    for index, gap_hours in enumerate(gaps):
        moment += timedelta(hours=gap_hours, minutes=draw(st.integers(0, 59)))
        zone = draw(st.sampled_from(ZONES))
        candidates.append(
            Candidate(
                name=f"backup_{index:03d}",
                created_at=moment.astimezone(zone),
                tags=frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))),
                verified=draw(st.booleans()),
                busy=draw(st.integers(0, 9)) == 0,
            )
        )
    now = moment + timedelta(hours=draw(st.integers(-24 * 10, 24 * 400)))
    return candidates, now.astimezone(draw(st.sampled_from(ZONES)))


policies = st.builds(
    RetentionPolicy,
    daily=st.integers(0, 10),
    weekly=st.integers(0, 6),
    monthly=st.integers(0, 14),
)


wide_policies = st.builds(
    RetentionPolicy,
    daily=st.integers(0, 10),
    weekly=st.integers(0, 3),
    monthly=st.integers(0, 3),
    hourly=st.integers(0, 30),
    within=st.timedeltas(timedelta(0), timedelta(days=20)),
    last=st.integers(0, 5),
)


def protected(candidate: Candidate, candidates: list[Candidate], now: datetime) -> bool:
    verified = [c for c in candidates if c.verified]
    newest_verified = max(verified, key=lambda c: (c.created_at, c.name), default=None)
    return (
        bool(candidate.tags & {"manual", "pinned"})
        or candidate.busy
        or candidate is newest_verified
        or candidate.created_at > now
    )


def reference_kept(candidates: list[Candidate], policy: RetentionPolicy, now: datetime) -> set[str]:
    """An independent oracle: group by period, take the N most recent periods, newest in each;
    the N newest; everything at most ``within`` old."""
    if policy.is_empty:
        return {c.name for c in candidates}
    period_keys: dict[str, Callable[[datetime], tuple[int, ...]]] = {
        "hourly": lambda t: (t.year, t.month, t.day, t.hour),
        "daily": lambda t: (t.year, t.month, t.day),
        "weekly": lambda t: (t.isocalendar()[0], t.isocalendar()[1], 0),
        "monthly": lambda t: (t.year, t.month, 0),
    }
    kept = {c.name for c in candidates if protected(c, candidates, now)}
    past = [c for c in candidates if c.created_at <= now]
    newest_first = sorted(past, key=lambda c: (c.created_at, c.name), reverse=True)
    kept.update(c.name for c in newest_first[: policy.last])
    kept.update(c.name for c in past if now - c.created_at <= policy.within)
    for rule, count in (
        ("hourly", policy.hourly),
        ("daily", policy.daily),
        ("weekly", policy.weekly),
        ("monthly", policy.monthly),
    ):
        groups: dict[tuple[int, ...], list[Candidate]] = {}
        for c in past:
            groups.setdefault(period_keys[rule](c.created_at.astimezone(UTC)), []).append(c)
        for period in sorted(groups, reverse=True)[:count]:
            kept.add(max(groups[period], key=lambda c: (c.created_at, c.name)).name)
    return kept


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_matches_the_independent_reference(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy
) -> None:
    candidates, now = history
    assert kept_names(apply_policy(candidates, policy, now)) == reference_kept(
        candidates, policy, now
    )


@settings(max_examples=300, deadline=None)
@given(histories(), wide_policies)
def test_last_within_and_hourly_match_the_independent_reference(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy
) -> None:
    candidates, now = history
    decisions = apply_policy(candidates, policy, now)
    assert kept_names(decisions) == reference_kept(candidates, policy, now)
    assert all(d.reasons and all(d.reasons) for d in decisions)
    survivors = [c for c in candidates if c.name in kept_names(decisions)]
    assert all(d.keep for d in apply_policy(survivors, policy, now))


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_one_decision_each_newest_first_with_reasons(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy
) -> None:
    candidates, now = history
    decisions = apply_policy(candidates, policy, now)
    assert sorted(d.name for d in decisions) == sorted(c.name for c in candidates)
    created = {c.name: c.created_at for c in candidates}
    times = [created[d.name] for d in decisions]
    assert times == sorted(times, reverse=True)
    assert all(d.reasons and all(d.reasons) for d in decisions)


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_keep_count_is_bounded_by_rules_plus_protected(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy
) -> None:
    candidates, now = history
    kept = kept_names(apply_policy(candidates, policy, now))
    if policy.is_empty:
        assert len(kept) == len(candidates)
    else:
        n_protected = sum(protected(c, candidates, now) for c in candidates)
        assert len(kept) <= policy.daily + policy.weekly + policy.monthly + n_protected


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_newest_and_protected_backups_are_always_kept(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy
) -> None:
    candidates, now = history
    decisions = by_name(apply_policy(candidates, policy, now))
    if candidates:
        newest = max(candidates, key=lambda c: (c.created_at, c.name))
        assert decisions[newest.name].keep
    for c in candidates:
        if "manual" in c.tags:
            assert decisions[c.name].keep and "manual backup" in decisions[c.name].reasons
        if "pinned" in c.tags:
            assert decisions[c.name].keep and "pinned" in decisions[c.name].reasons
        if c.busy:
            assert decisions[c.name].keep
        if c.created_at > now:
            assert "created after now (clock skew)" in decisions[c.name].reasons
    verified = [c for c in candidates if c.verified]
    if verified:
        newest_verified = max(verified, key=lambda c: (c.created_at, c.name))
        assert "newest verified backup" in decisions[newest_verified.name].reasons


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_applying_the_policy_to_the_kept_set_removes_nothing(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy
) -> None:
    candidates, now = history
    kept = kept_names(apply_policy(candidates, policy, now))
    survivors = [c for c in candidates if c.name in kept]
    assert all(d.keep for d in apply_policy(survivors, policy, now))


@settings(max_examples=200, deadline=None)
@given(histories(), policies, st.randoms(use_true_random=False))
def test_input_order_and_timezones_do_not_matter(
    history: tuple[list[Candidate], datetime], policy: RetentionPolicy, rng: random.Random
) -> None:
    candidates, now = history
    expected = apply_policy(candidates, policy, now)
    shuffled = [
        Candidate(c.name, c.created_at.astimezone(rng.choice(ZONES)), c.tags, c.verified, c.busy)
        for c in candidates
    ]
    rng.shuffle(shuffled)
    assert apply_policy(shuffled, policy, now.astimezone(UTC)) == expected


def test_database_policy_keeps_the_newest_of_each_of_seven_days() -> None:
    start = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)
    candidates = []
    for day in range(10):
        for hour in (0, 12):
            at = start + timedelta(days=day, hours=hour)
            candidates.append(backup(f"b_{day:02d}_{hour:02d}", at))
    now = start + timedelta(days=9, hours=13)
    decisions = by_name(apply_policy(candidates, RetentionPolicy(daily=7), now))
    assert kept_names(list(decisions.values())) == {f"b_{d:02d}_12" for d in range(3, 10)}
    assert decisions["b_09_12"].reasons == ("daily 2026-11-27 (1 of 7)",)
    assert decisions["b_03_12"].reasons == ("daily 2026-11-21 (7 of 7)",)
    assert decisions["b_09_00"].reasons == ("daily 2026-11-27 kept by newer b_09_12",)
    assert decisions["b_02_12"].reasons == (
        "daily 2026-11-20 is older than the 7 most recent days",
    )


def test_periods_are_the_most_recent_that_have_a_backup_not_calendar_windows() -> None:
    days = [1, 5, 9, 20]
    candidates = [backup(f"d{d}", datetime(2026, 3, d, 3, tzinfo=UTC)) for d in days]
    decisions = apply_policy(candidates, RetentionPolicy(daily=3), datetime(2026, 4, 1, tzinfo=UTC))
    assert kept_names(decisions) == {"d20", "d9", "d5"}


def test_rules_are_ored_and_reasons_name_iso_week_and_month() -> None:
    # 2027-01-01 is a Friday in ISO week 2026-W53.
    candidates = [
        backup("dec30", datetime(2026, 12, 30, 2, tzinfo=UTC)),
        backup("jan01", datetime(2027, 1, 1, 2, tzinfo=UTC)),
        backup("jan04", datetime(2027, 1, 4, 2, tzinfo=UTC)),
    ]
    now = datetime(2027, 1, 4, 6, tzinfo=UTC)
    decisions = by_name(apply_policy(candidates, DATABASE_POLICY, now))
    assert decisions["jan04"].reasons == (
        "daily 2027-01-04 (1 of 7)",
        "weekly 2027-W01 (1 of 4)",
        "monthly 2027-01 (1 of 12)",
    )
    assert decisions["jan01"].reasons == ("daily 2027-01-01 (2 of 7)", "weekly 2026-W53 (2 of 4)")
    assert decisions["dec30"].reasons == (
        "daily 2026-12-30 (3 of 7)",
        "monthly 2026-12 (2 of 12)",
    )


def test_bucket_policy_keeps_four_weeks_and_twelve_months() -> None:
    start = datetime(2025, 1, 5, 4, tzinfo=UTC)  # a Sunday
    candidates = [backup(f"w{i:03d}", start + timedelta(weeks=i)) for i in range(80)]
    now = start + timedelta(weeks=79, hours=1)
    decisions = apply_policy(candidates, BUCKET_POLICY, now)
    kept = [d for d in decisions if d.keep]
    assert [d.name for d in kept[:4]] == ["w079", "w078", "w077", "w076"]
    assert sum(any(r.startswith("monthly") for r in d.reasons) for d in kept) == 12
    assert all(not r.startswith("daily") for d in decisions for r in d.reasons)


def test_protections_keep_old_backups_with_their_reason() -> None:
    old = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    candidates = [
        backup("newest", now - timedelta(hours=1)),
        backup("verified_old", old + timedelta(days=3), verified=True),
        backup("manual_old", old, tags=("manual",)),
        backup("pinned_old", old + timedelta(days=1), tags=("scheduled", "pinned")),
        backup("restoring", old + timedelta(days=2), busy=True),
        backup("skewed", now + timedelta(hours=2)),
        backup("plain_old", old + timedelta(days=4)),
    ]
    decisions = by_name(apply_policy(candidates, RetentionPolicy(daily=1), now))
    assert decisions["manual_old"].reasons[-1] == "manual backup"
    assert decisions["pinned_old"].reasons[-1] == "pinned"
    assert decisions["restoring"].reasons[-1] == "being restored or verified"
    assert decisions["verified_old"].reasons[-1] == "newest verified backup"
    assert decisions["skewed"].reasons == ("created after now (clock skew)",)
    assert decisions["newest"].reasons == ("daily 2026-11-27 (1 of 1)",)
    assert not decisions["plain_old"].keep
    assert kept_names(list(decisions.values())) == set(decisions) - {"plain_old"}


def test_an_empty_policy_removes_nothing() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = apply_policy(
        [backup("a", at), backup("b", at - timedelta(days=40))], RetentionPolicy(), at
    )
    assert all(d.keep for d in decisions)
    assert decisions[0].reasons == ("no retention rule set: nothing is removed",)


def test_no_candidates_gives_no_decisions() -> None:
    assert apply_policy([], DATABASE_POLICY, datetime(2026, 1, 1, tzinfo=UTC)) == []


@pytest.mark.parametrize(
    ("candidates", "now"),
    [
        ([backup("a", datetime(2026, 1, 1))], datetime(2026, 1, 2, tzinfo=UTC)),
        ([backup("a", datetime(2026, 1, 1, tzinfo=UTC))], datetime(2026, 1, 2)),
        (
            [
                backup("a", datetime(2026, 1, 1, tzinfo=UTC)),
                backup("a", datetime(2026, 1, 2, tzinfo=UTC)),
            ],
            datetime(2026, 1, 3, tzinfo=UTC),
        ),
    ],
    ids=["naive-backup", "naive-now", "duplicate-name"],
)
def test_bad_input_is_rejected(candidates: list[Candidate], now: datetime) -> None:
    with pytest.raises(InvalidInput):
        apply_policy(candidates, DATABASE_POLICY, now)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="keep-weekly"):
        RetentionPolicy(weekly=-1)


def test_hourly_keeps_the_newest_of_each_utc_hour_for_the_most_recent_hours() -> None:
    india = timezone(timedelta(hours=5, minutes=30))  # 17:29 there is 11:59 UTC
    candidates = [
        backup("h09", datetime(2026, 3, 29, 9, 40, tzinfo=UTC)),
        backup("h10_last_second", datetime(2026, 3, 29, 10, 59, 59, tzinfo=UTC)),
        backup("h11_first", datetime(2026, 3, 29, 11, 0, tzinfo=UTC)),
        backup("h11_late", datetime(2026, 3, 29, 17, 29, tzinfo=india)),
    ]
    now = datetime(2026, 3, 29, 12, 5, tzinfo=UTC)
    decisions = by_name(apply_policy(candidates, RetentionPolicy(hourly=2), now))
    assert decisions["h11_late"].reasons == ("hourly 2026-03-29T11 (1 of 2)",)
    assert decisions["h11_first"].reasons == ("hourly 2026-03-29T11 kept by newer h11_late",)
    assert decisions["h10_last_second"].reasons == ("hourly 2026-03-29T10 (2 of 2)",)
    assert decisions["h09"].reasons == (
        "hourly 2026-03-29T09 is older than the 2 most recent hours",
    )
    assert kept_names(list(decisions.values())) == {"h11_late", "h10_last_second"}


def test_hourly_periods_cross_midnight_and_month_ends() -> None:
    candidates = [backup(f"b{i}", datetime(2026, 1, 31, 22, 30, tzinfo=UTC) + timedelta(hours=i))
                  for i in range(4)]  # 22:30, 23:30 on Jan 31; 00:30, 01:30 on Feb 1
    now = datetime(2026, 2, 1, 1, 45, tzinfo=UTC)
    decisions = by_name(apply_policy(candidates, RetentionPolicy(hourly=3), now))
    assert decisions["b1"].reasons == ("hourly 2026-01-31T23 (3 of 3)",)
    assert not decisions["b0"].keep


def test_within_keeps_everything_up_to_the_boundary_included() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    candidates = [
        backup("fresh", now - timedelta(minutes=1)),
        backup("on_the_edge", now - timedelta(hours=2)),
        backup("just_past", now - timedelta(hours=2, microseconds=1)),
        backup("yesterday", now - timedelta(days=1)),
        backup("skewed", now + timedelta(minutes=5)),
    ]
    decisions = by_name(apply_policy(candidates, RetentionPolicy(within=timedelta(hours=2)), now))
    assert decisions["fresh"].reasons == ("within the last 2h",)
    assert decisions["on_the_edge"].reasons == ("within the last 2h",)
    assert decisions["just_past"].reasons == ("older than 2h",)
    assert not decisions["yesterday"].keep
    assert decisions["skewed"].reasons == ("created after now (clock skew)",)


def test_last_keeps_the_newest_whatever_their_age_and_rules_are_ored() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    candidates = [backup(f"m{i}", now - timedelta(days=40 * i + 1)) for i in range(4)]
    policy = RetentionPolicy(last=2, within=timedelta(days=1), hourly=48)
    decisions = by_name(apply_policy(candidates, policy, now))
    assert decisions["m0"].reasons == ("last (1 of 2)", "within the last 1d",
                                       "hourly 2026-11-26T12 (1 of 48)")
    assert decisions["m1"].reasons == ("last (2 of 2)", "hourly 2026-10-17T12 (2 of 48)")
    assert decisions["m3"].reasons == ("hourly 2026-07-29T12 (4 of 48)",)
    only_last = by_name(apply_policy(candidates, RetentionPolicy(last=2), now))
    assert only_last["m2"].reasons == ("not among the 2 newest",)
    assert kept_names(list(only_last.values())) == {"m0", "m1"}


@pytest.mark.parametrize(
    ("knobs", "message"),
    [({"hourly": -1}, "keep-hourly"), ({"last": -2}, "keep-last"),
     ({"within": timedelta(seconds=-1)}, "keep-within")],
)
def test_negative_new_knobs_are_rejected(knobs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        RetentionPolicy(**knobs)  # type: ignore[arg-type]
