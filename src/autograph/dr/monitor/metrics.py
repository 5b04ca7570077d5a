"""Prometheus metrics of the DR system, served at ``GET /metrics``
(:mod:`autograph.dr.api.metrics`).

Computed at scrape time from the DR status (:mod:`autograph.dr.monitor.status`, cached a few
seconds), so every gateway process answers the same numbers whichever one ran the backups. Per
backup kind and source: last success timestamp, duration and size, age, next scheduled run, number
of backups, verification state; then the active alerts by rule and severity and the drills.

``/metrics`` needs the admin token like the admin API (nothing is anonymous), unless
``AUTOGRAPH_METRICS_PUBLIC=true``; a Prometheus job passes it with
``authorization: {credentials_file: var/secrets/admin-api-key}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autograph.dr.monitor.status import LEVELS, DrStatus

SCRAPE_CACHE_SECONDS = 10.0
SOURCE = ["kind", "source"]


def _timestamp(value: object) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float("nan")


def families(status: DrStatus) -> Iterator[Metric]:
    """The metric families for one status snapshot."""
    yield from _backups(status)
    yield from _offsite(status)
    yield from _snapshots(status)
    yield from _consistent_point(status)
    yield from _alerts_and_level(status)
    yield from _drills(status)


_PER_SOURCE = {
    "last_success_timestamp_seconds": "Unix time the last successful backup finished",
    "last_duration_seconds": "How long the last successful backup took",
    "last_size_bytes": "Size of the last successful backup",
    "age_seconds": "Seconds since the last successful backup finished",
    "next_run_timestamp_seconds": "Unix time the next scheduled backup is due",
    "count": "Backups in the catalog",
    "verification_failed": "Backups whose last verification failed",
    "last_verified_timestamp_seconds": "Unix time the newest verified backup finished",
    "within_rpo": "1 if the last backup is younger than the RPO target",
}


def _backups(status: DrStatus) -> Iterator[Metric]:
    """``autograph_backup_*``: one gauge family per figure, one sample per (kind, source)."""
    gauges = {name: GaugeMetricFamily(f"autograph_backup_{name}", text, labels=SOURCE)
              for name, text in _PER_SOURCE.items()}
    for item in status.sources:
        labels = [item.kind, item.source]
        last = item.last_success
        values = {
            "count": float(item.backups),
            "verification_failed": float(len(item.verification_failed)),
            "within_rpo": float(item.within_rpo),
        }
        if last is not None:
            values["last_success_timestamp_seconds"] = _timestamp(last.finished_at)
            values["last_duration_seconds"] = last.duration_seconds
            values["last_size_bytes"] = float(last.size_bytes)
            values["age_seconds"] = float(item.age_seconds or 0.0)
        if item.next_scheduled_run is not None:
            values["next_run_timestamp_seconds"] = _timestamp(item.next_scheduled_run)
        if item.last_verified is not None:
            values["last_verified_timestamp_seconds"] = _timestamp(item.last_verified.finished_at)
        for name, value in values.items():
            gauges[name].add_metric(labels, value)
    yield from gauges.values()


def _snapshots(status: DrStatus) -> Iterator[Metric]:
    """Age and count of bucket snapshots, per bucket (none when snapshots are off)."""
    if not status.snapshots:
        return
    age = GaugeMetricFamily("autograph_snapshot_age_seconds",
                            "Seconds since the newest bucket snapshot began", labels=["bucket"])
    kept = GaugeMetricFamily("autograph_snapshot_count", "Bucket snapshots kept",
                             labels=["bucket"])
    for snap in status.snapshots:
        kept.add_metric([snap.bucket], float(snap.snapshots))
        if snap.age_seconds is not None:
            age.add_metric([snap.bucket], snap.age_seconds)
    yield age
    yield kept


def _consistent_point(status: DrStatus) -> Iterator[Metric]:
    """Age of the newest consistent point and the objects still waiting in the outbox."""
    point = status.consistent_point
    if point is None:
        return
    yield GaugeMetricFamily("autograph_consistent_point_age_seconds",
                            "Seconds since the newest point the database and every object "
                            "it references can be recovered to together",
                            value=point.age_seconds)
    yield GaugeMetricFamily("autograph_outbox_pending_objects",
                            "Objects written but not yet in every backup tier",
                            value=float(point.pending_objects))


def _alerts_and_level(status: DrStatus) -> Iterator[Metric]:
    """Alerts firing per (rule, severity), and the overall status as a one-hot gauge."""
    active = GaugeMetricFamily("autograph_alerts_active", "Alerts firing now",
                               labels=["rule", "severity"])
    for (rule, severity), count in sorted(Counter(
            (a.rule, a.severity) for a in status.active_alerts).items()):
        active.add_metric([rule, severity], float(count))
    yield active
    level = GaugeMetricFamily("autograph_dr_status", "1 for the current overall DR status",
                              labels=["status"])
    for name in LEVELS:
        level.add_metric([name], float(status.status == name))
    yield level


def _drills(status: DrStatus) -> Iterator[Metric]:
    """The last drill (when one ran), the restore proofs, and the next drill due."""
    drills = status.drills
    if drills.last_tested is not None:
        yield GaugeMetricFamily("autograph_drill_last_timestamp_seconds",
                                "Unix time the last DR drill finished",
                                value=_timestamp(drills.last_tested))
        yield GaugeMetricFamily("autograph_drill_last_passed", "1 if the last DR drill passed",
                                value=float(bool(drills.last_passed)))
    yield from _proofs(status)
    yield GaugeMetricFamily("autograph_drill_next_timestamp_seconds",
                            "Unix time the next DR drill is due",
                            value=_timestamp(drills.next_scheduled))


def _offsite(status: DrStatus) -> Iterator[Metric]:
    """The off-site tier: reachability, and per kind its lag, backlog and newest copy."""
    offsite = status.offsite
    if offsite is None:
        return
    yield GaugeMetricFamily("autograph_offsite_reachable", "1 if the off-site store answers",
                            value=float(offsite.reachable))
    lag = GaugeMetricFamily("autograph_offsite_lag_seconds", "Age of the oldest copy waiting "
                            "to go off-site (0: none)", labels=["kind"])
    backlog = GaugeMetricFamily("autograph_offsite_backlog", "Copies waiting to go off-site",
                                labels=["kind"])
    newest = GaugeMetricFamily("autograph_offsite_newest_timestamp_seconds",
                               "Unix time of the newest off-site copy", labels=["kind"])
    for item in offsite.kinds:
        if item.lag_seconds is not None:
            lag.add_metric([item.kind], item.lag_seconds)
        if item.backlog is not None:
            backlog.add_metric([item.kind], float(item.backlog))
        if item.newest_offsite_at is not None:
            newest.add_metric([item.kind], _timestamp(item.newest_offsite_at))
    yield from (lag, backlog, newest)


def _proofs(status: DrStatus) -> Iterator[Metric]:
    """Per kind "last proven restorable" (time, duration, last attempt passed) and the last
    drill's RTO and RPO."""
    when = GaugeMetricFamily("autograph_proven_restorable_timestamp_seconds",
                             "Unix time a backup of the kind last passed a restore test",
                             labels=["kind", "method"])
    took = GaugeMetricFamily("autograph_proven_restorable_duration_seconds",
                             "How long that restore test took", labels=["kind", "method"])
    ok = GaugeMetricFamily("autograph_proof_last_passed",
                           "1 if the last restore test of the kind passed", labels=["kind"])
    for item in status.proven:
        if item.last_proven_at is not None:
            labels = [item.kind, item.method or ""]
            when.add_metric(labels, _timestamp(item.last_proven_at))
            took.add_metric(labels, item.duration_seconds or 0.0)
        if item.last_status is not None:
            ok.add_metric([item.kind], float(item.last_status == "passed"))
    yield from (when, took, ok)
    drill = status.last_drill
    if drill is not None:
        for name, value in (("rto", drill.rto_seconds), ("rpo", drill.rpo_seconds)):
            if value is not None:
                yield GaugeMetricFamily(f"autograph_drill_last_{name}_seconds",
                                        f"The {name.upper()} the last DR drill measured",
                                        value=value)


class StatusCollector(Collector):
    """A collector that reads a fresh (or briefly cached) status at every scrape."""

    def __init__(self, snapshot: Callable[[], DrStatus]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the current status."""
        yield from families(self._snapshot())


def render(snapshot: Callable[[], DrStatus]) -> bytes:
    """The Prometheus text exposition of one status snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(snapshot))
    return generate_latest(registry)
