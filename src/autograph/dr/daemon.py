"""The gateway's background DR work: the backup schedules and the monitor, wired from settings.

:class:`Runtime` starts one scheduler thread per scheduled kind, bucket snapshots included (each
run guarded by its cross-process lock, see :mod:`autograph.dr.scheduler`), and one monitor
thread. Every gateway
process journals its backup events (:mod:`autograph.dr.ops.journal`); one of them, the leader (it
holds ``BACKUPS/.locks/monitor.lock``), runs the monitor and the alert dispatcher, whose state
it keeps in ``HOME/dr/alerts-state.json``. When the leader stops, another process takes over
with that state, so an alert already sent is not sent again and is still resolved once.

The gateway takes its startup/shutdown hooks from :func:`gateway_extension`; routes find the
running instance with :func:`runtime_for`. The schedules come from :mod:`autograph.dr.schedules`,
the monitor's channels and probes from :mod:`autograph.dr.alerting`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.alerting import build_channels, build_dispatcher, build_watched, expected_sources
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.models import Alert, Channel
from autograph.dr.catalog import Catalog
from autograph.dr.models import Kind
from autograph.dr.monitor.infrastructure import infrastructure_health
from autograph.dr.monitor.monitor import Monitor
from autograph.dr.monitor.status import (
    DrStatus,
    SnapshotStatus,
    consistent_point,
    overall,
    read_alert_state,
    rpo_of,
    snapshot_status,
    source_status,
    worst,
)
from autograph.dr.monitor.status import drills_of as drill_status
from autograph.dr.offsite.status import offsite_status
from autograph.dr.ops import hooks, jobstore, journal, leases, locks
from autograph.dr.proof.schedule import proven_kinds
from autograph.dr.proof.status import last_drill, proven
from autograph.dr.scheduler import LastRun, NextRun, Scheduler
from autograph.dr.schedules import (
    build_scheduler,
    intervals,
    newest_snapshots,
    open_catalogs,
    sources,
)
from autograph.errors import Conflict
from autograph.secrets import Credentials, load_credentials

log = logging.getLogger("autograph.dr.daemon")


# The DR status -------------------------------------------------------------------------------

def snapshot_names(settings: Settings, creds: Credentials,
                   unreachable: dict[str, str]) -> dict[str, list[str]] | None:
    """Snapshot names per tier (None when snapshots are off); unreachable tiers are added to
    ``unreachable``."""
    from autograph.dr.buckets.snapshots.store import SnapshotStore

    if not (settings.scheduler_enabled and settings.snapshot_interval_seconds > 0):
        return None
    per_tier, down = SnapshotStore(settings, creds).names()
    unreachable.update({f"snapshot/{tier}": why for tier, why in down.items()})
    return per_tier


def snapshot_states(settings: Settings, creds: Credentials, now: datetime,
                    unreachable: dict[str, str], *,
                    names: dict[str, list[str]] | None = None,
                    plan: Mapping[tuple[Kind, str], NextRun] | None = None,
                    ) -> list[SnapshotStatus]:
    """Per application bucket, its newest snapshot's age and next scheduled snapshot (none
    when snapshots are off). ``names``: :func:`snapshot_names`, read here when not given."""
    from autograph.dr.buckets.snapshots.store import parse_name

    if names is None:
        names = snapshot_names(settings, creds, unreachable)
    if names is None:
        return []
    dated = [(n, *parse_name(n)) for n in {n for found in names.values() for n in found}]
    return [snapshot_status(bucket, [(n, at) for n, b, at in dated if b == bucket], now=now,
                            interval=settings.snapshot_interval_seconds,
                            rpo_target_seconds=settings.rpo_target_seconds,
                            run=(plan or {}).get(("snapshot", bucket)))
            for bucket in settings.app_buckets]


def collect_status(settings: Settings, creds: Credentials, *, clock: Clock = utc_now,
                   scheduler: Scheduler | None = None,
                   catalogs: dict[Kind, Catalog] | None = None,
                   alerts: list[Alert] | None = None) -> DrStatus:
    """The DR status now: catalogs, schedule plan, active alerts (from ``alerts`` or the
    persisted monitor state) and the drill history. Unreachable tiers are reported, not raised.
    """
    now = clock()
    catalogs = catalogs or open_catalogs(settings, creds)
    if scheduler is None:  # not the running one: a missed run shows as due now
        scheduler = build_scheduler(settings, creds, catalogs, clock)
        scheduler.started_at = now - scheduler.startup_delay
    listings = {kind: catalog.list() for kind, catalog in catalogs.items()}
    unreachable = {f"{kind}/{tier}": why for kind, listing in listings.items()
                   for tier, why in listing.unreachable.items()}
    names = snapshot_names(settings, creds, unreachable)
    latest: dict[Kind, dict[str, LastRun]] = (
        {"snapshot": newest_snapshots(names)} if names is not None else {})
    kinds = [kind for kind in scheduler.schedules if kind in listings or kind in latest]
    plan = {(run.kind, run.source): run for run in scheduler.plan(
        kinds, listings={kind: listing.backups for kind, listing in listings.items()},
        latest=latest)}
    every = intervals(settings)
    margin = timedelta(seconds=settings.backup_overdue_margin_seconds)
    states = [source_status(kind, source, listings[kind].backups, plan.get((kind, source)),
                            now=now, interval=every[kind], margin=margin,
                            rpo_target_seconds=settings.rpo_target_seconds)
              for kind, names in sources(settings).items() for source in names]
    snapshots = snapshot_states(settings, creds, now, unreachable, names=names, plan=plan)
    active = alerts if alerts is not None else read_alert_state(settings.dr_dir)[0]
    scheduled = settings.scheduler_enabled and settings.proof_enabled
    drills = drill_status(settings.dr_dir, now,
                          settings.drill_interval_seconds if scheduled else None)
    offsite = offsite_status(settings, catalogs)
    point = consistent_point(settings.dr_dir, now)
    rpo = rpo_of(settings, states, snapshots, point, offsite, wal_streaming=_wal_caught_up(
        settings, creds))
    level = overall(states, active, drills, unreachable, snapshots)
    if not rpo.met:  # a recovery now would lose more than the target
        level = worst([level, "warning"])
    if offsite is not None and offsite.problems:
        level = worst([level, "warning"])
    return DrStatus(generated_at=now, status=level, offsite=offsite,
                    snapshots=snapshots,
                    consistent_point=point, rpo=rpo,
                    rpo_target_seconds=settings.rpo_target_seconds,
                    rto_target_seconds=settings.rto_target_seconds,
                    scheduler_enabled=settings.scheduler_enabled,
                    scheduler_last_tick=scheduler.last_tick_at, sources=states,
                    active_alerts=active, drills=drills, unreachable=unreachable,
                    infrastructure=infrastructure_health(settings, creds),
                    proven=proven(settings.dr_dir, proven_kinds(settings)),
                    proof_interval_seconds=settings.proof_interval_seconds if scheduled
                    else None,
                    last_drill=last_drill(settings.dr_dir))


def _wal_caught_up(settings: Settings, creds: Credentials) -> bool:
    """The WAL receiver streams and holds everything the server flushed (within one page)."""
    from autograph.stack.infra import streaming_lag_bytes

    try:
        lag = streaming_lag_bytes(settings, creds)
    except Exception:  # PostgreSQL down: nothing is streaming
        return False
    return lag is not None and lag <= 8192


# The running part ----------------------------------------------------------------------------

class Runtime:
    """Scheduler threads, the monitor thread and (while leader) the dispatcher of one process.

    ``channels`` replaces the configured channels (tests); ``clock`` drives schedules, the
    monitor and alert times.
    """

    def __init__(self, settings: Settings, creds: Credentials | None = None, *,
                 clock: Clock = utc_now, channels: list[Channel] | None = None) -> None:
        self.settings = settings
        self.creds = creds or load_credentials(settings)
        self.clock = clock
        self.channels = channels
        self.catalogs = open_catalogs(settings, self.creds)
        leases.install(settings, self.creds)  # AUTOGRAPH_LEASES=cluster: locks across hosts
        jobstore.install(settings, self.creds)  # ... and jobs every gateway can answer for
        self.scheduler = build_scheduler(settings, self.creds, self.catalogs, clock)
        self.journal_path = journal.journal_path(settings.dr_dir)
        self.dispatcher: AlertDispatcher | None = None
        self.monitor: Monitor | None = None
        self._leader: locks.OperationLock | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._status_cache: tuple[float, DrStatus] | None = None
        self._status_lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """True while this process runs the monitor and owns the alert state."""
        return self._leader is not None

    def start(self) -> None:
        """Journal this process's backup events; start the enabled threads."""
        record = journal.recorder(self.journal_path)

        def on_event(event: hooks.BackupEvent) -> None:
            record(event)
            self._wake.set()

        self._unsubscribe = hooks.on_event(on_event)
        if self.settings.scheduler_enabled:  # a thread per kind: a long dump delays no other
            for kind, schedule in self.scheduler.schedules.items():
                poll = min(self.settings.scheduler_poll_seconds,
                           schedule.interval.total_seconds())
                self._spawn(f"dr-scheduler-{kind}", self.scheduler.run, self._stop, poll,
                            [kind])
        if self.settings.outbox_interval_seconds > 0:
            self._spawn("dr-outbox", self._outbox_loop)
        if self.settings.scheduler_enabled and self.settings.proof_enabled:
            self._spawn("dr-proof", self._proof_loop)
        if self.settings.monitor_enabled:
            self._spawn("dr-monitor", self._monitor_loop)
        log.info("DR runtime started (scheduler %s, monitor %s)",
                 "on" if self.settings.scheduler_enabled else "off",
                 "on" if self.settings.monitor_enabled else "off")

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads (a backup in progress is left to finish in its daemon thread),
        flush and close the dispatcher, give up the leadership."""
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.dispatcher is not None:
            self.dispatcher.close(timeout)
        if self._leader is not None:
            self._leader.release()
            self._leader = None

    def try_lead(self) -> bool:
        """Become the monitor leader if no other process is; build the monitor then."""
        if self._leader is not None:
            return True
        try:
            self._leader = locks.acquire(self.settings.backups_dir, "monitor", "monitor")
        except Conflict:
            return False
        self.dispatcher = build_dispatcher(self.settings, clock=self.clock,
                                           channels=self.channels)
        self.monitor = Monitor(
            self.settings, self.dispatcher, self.catalogs, expected=expected_sources(
                self.settings), watched=build_watched(self.settings, self.creds),
            clock=self.clock, journal_path=self.journal_path, s3_client=self._s3_client,
            scheduled_only=self.settings.scheduler_enabled, creds=self.creds)
        log.info("this process now runs the DR monitor")
        return True

    def _outbox_loop(self) -> None:
        """Drain the object outbox every ``outbox_interval_seconds``; one gateway at a time
        (the ``outbox`` lock), the others wait their turn."""
        from autograph.dr.buckets.outbox import LOCK_KIND, Replicator

        replicator = Replicator(self.settings, self.creds, clock=self.clock)
        while not self._stop.wait(self.settings.outbox_interval_seconds):
            try:
                with locks.acquire(self.settings.backups_dir, LOCK_KIND, "replicate"):
                    replicator.run_pass()
            except Conflict:
                continue  # another gateway is draining
            except Exception:  # a pass failing (PostgreSQL down) must not end the loop
                log.exception("outbox pass failed")

    def _proof_loop(self) -> None:
        from autograph.dr.proof.run import Prover
        from autograph.dr.proof.schedule import ProofScheduler

        prover = Prover(self.settings, self.creds, clock=self.clock)
        ProofScheduler(self.settings, prover, clock=self.clock).run(
            self._stop, self.settings.scheduler_poll_seconds)

    def _s3_client(self) -> Any:
        from autograph.s3.boto import app_client

        return app_client(self.settings, self.creds, retries=1, connect_timeout=2,
                          read_timeout=30)

    def _monitor_loop(self) -> None:
        interval = self.settings.monitor_interval_seconds
        next_full = time.monotonic()
        while not self._stop.is_set():
            wait = interval
            if self.try_lead() and self.monitor is not None:
                if time.monotonic() >= next_full:
                    self.monitor.run_once()
                    next_full = time.monotonic() + interval
                else:  # woken by a backup event: just handle the events now
                    self._guarded(self.monitor.process_journal)
                wait = max(0.0, next_full - time.monotonic())
            self._wake.wait(wait)
            self._wake.clear()

    @staticmethod
    def _guarded(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            log.exception("monitor step failed")

    # Reading -----------------------------------------------------------------------------------

    def channels_in_use(self) -> list[Channel]:
        """The alert channels (configured, or given to the constructor)."""
        return self.channels if self.channels is not None else build_channels(self.settings)

    def alerts(self, limit: int = 50) -> tuple[list[Alert], list[Alert]]:
        """Active and recent alerts: the leader's own, else the state the leader persisted."""
        if self.dispatcher is not None:
            return self.dispatcher.active(), self.dispatcher.recent(limit)
        active, recent = read_alert_state(self.settings.dr_dir)
        return active, recent[:limit]

    def status(self, max_age: float = 0.0) -> DrStatus:
        """The DR status; the catalog part is reused if read less than ``max_age`` seconds
        ago, the alerts are always current."""
        with self._status_lock:
            cached = self._status_cache
        if cached is not None and time.monotonic() - cached[0] < max_age:
            old = cached[1]
            active = self.alerts()[0]
            return old.model_copy(update={"active_alerts": active, "status": overall(
                old.sources, active, old.drills, old.unreachable)})
        result = collect_status(self.settings, self.creds, clock=self.clock,
                                scheduler=self.scheduler, catalogs=self.catalogs,
                                alerts=self.alerts()[0])
        with self._status_lock:
            self._status_cache = (time.monotonic(), result)
        return result


Hook = Callable[[Any], Awaitable[None]]

_running: weakref.WeakKeyDictionary[Any, Runtime] = weakref.WeakKeyDictionary()


def runtime_for(resources: Any) -> Runtime | None:
    """The Runtime started for an app's Resources (None when not started)."""
    return _running.get(resources)


def gateway_extension() -> tuple[list[Hook], list[Hook]]:
    """What the gateway adds: a startup hook that starts a Runtime for its Resources and a
    shutdown hook that stops it."""

    async def startup(resources: Any) -> None:
        runtime = Runtime(resources.settings, resources.creds)
        runtime.start()
        _running[resources] = runtime

    async def shutdown(resources: Any) -> None:
        runtime = _running.pop(resources, None)
        if runtime is not None:
            await asyncio.to_thread(runtime.stop)

    return [startup], [shutdown]
