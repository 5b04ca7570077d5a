"""The monitor: the plan's alerts, turned into fire-once / resolve-once calls on a dispatcher.

Each family of rules is a module of its own: :mod:`.backup_events` (failed, small and
unverified backups, from the events every process journals), :mod:`.backup_deadlines` (the
dead-man's switch), :mod:`.component_health` (probes of the stack's components),
:mod:`.storage_space` (disks and bucket quotas), :mod:`.references` (rows naming missing
objects, every ``reference_check_seconds``); this module adds the small ones (off-site, object
outbox, proofs, escalation) and runs a pass.

The monitor decides; the :class:`~autograph.dr.alerts.dispatcher.AlertDispatcher` remembers
what fires and delivers. Every check's failure is logged and never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from autograph.clock import isoformat
from autograph.dr.alerts import acks
from autograph.dr.monitor import references
from autograph.dr.monitor.backup_deadlines import BackupDeadlineChecks
from autograph.dr.monitor.backup_events import BackupEventChecks
from autograph.dr.monitor.component_health import HealthChecks
from autograph.dr.monitor.storage_space import StorageChecks
from autograph.dr.monitor.watched import Expected, Role, Watched, subject
from autograph.dr.proof import alerts as proof_alerts

log = logging.getLogger("autograph.dr.monitor.monitor")

__all__ = ["Expected", "Monitor", "Role", "Watched", "subject"]


class Monitor(BackupEventChecks, BackupDeadlineChecks, HealthChecks, StorageChecks):
    """Evaluates every rule; :meth:`run_once` is one pass (the runtime calls it periodically)."""

    def run_once(self) -> None:
        """Process journaled events, then check backups, health, storage and quotas."""
        steps: tuple[Callable[[], None], ...] = (
            self.process_journal, self.check_backups, self.check_snapshots, self.check_outbox,
            self.check_health, self.check_storage, self.check_quotas, self.check_offsite,
            self.check_proofs, self.check_references, self.check_escalation)
        self._listings = {}
        try:
            for step in steps:
                try:
                    step()
                except Exception:  # one broken check must not silence the others
                    log.exception("monitor check %s failed", step.__name__)
        finally:
            self._listings = None

    def check_escalation(self) -> None:
        """Send the escalation levels now due (the acknowledgements read fresh each pass)."""
        self.alerts.escalate(acks.load(self.settings.dr_dir))

    def check_offsite(self) -> None:
        """``offsite_unreachable`` while the off-site store does not answer; ``offsite_lag``
        while any kind (WAL included) waits longer than the RPO target to go off-site."""
        from autograph.dr.offsite.status import offsite_status

        status = offsite_status(self.settings, self.catalogs)
        if status is None:
            return
        if status.reachable:
            self.alerts.resolve("offsite_unreachable")
        else:
            self.fire("offsite_unreachable", "offsite_unreachable", "critical",
                      f"the off-site store {status.endpoint} is unreachable ({status.error}); "
                      "backups continue locally and are queued for it",
                      endpoint=status.endpoint)
        late = [k for k in status.kinds if k.lag_seconds is not None
                and k.lag_seconds > self.settings.rpo_target_seconds]
        if not late:
            self.alerts.resolve("offsite_lag")
            return
        self.fire("offsite_lag", "offsite_lag", "critical",
                  "off-site copies lag beyond the RPO target ("
                  + ", ".join(f"{k.kind} {k.lag_seconds:.0f} s" for k in late)
                  + f" > {self.settings.rpo_target_seconds} s)",
                  kinds=[k.kind for k in late])

    def check_outbox(self) -> None:
        """Object protection: a tier whose protected point (every object written before it is
        in the tier) is older than ``outbox_alert_seconds`` — the backup store is down, or the
        replicator stopped (then every tier ages). Resolved when the tier catches up."""
        if self.settings.outbox_interval_seconds <= 0:
            return
        from autograph.dr.buckets.watermark import read_state

        state = read_state(self.settings.dr_dir)
        if state is None:
            return
        now = self.clock()
        limit = timedelta(seconds=self.settings.outbox_alert_seconds)
        for tier, protected in state.protected.items():
            key = f"object_protection:{tier}"
            age = now - protected
            if age <= limit:
                self.alerts.resolve(key)
                continue
            why = state.failed.get(tier) or ("the replicator has not run since "
                                             f"{isoformat(state.at)}" if now - state.at > limit
                                             else "objects are still being copied")
            self.fire(key, "object_protection_lag", "critical",
                      f"objects written in the last {age.total_seconds():.0f} s are not in the "
                      f"{tier} backup tier ({state.pending} waiting in the outbox): {why}",
                      tier=tier, protected_at=isoformat(protected), pending=state.pending)

    def check_proofs(self) -> None:
        """Restore tests and drills: failed, refused, stale, overdue
        (:mod:`autograph.dr.proof.alerts`)."""
        proof_alerts.check(self.settings, self.alerts, self.clock(), self.started_at)

    def check_references(self) -> None:
        """Every ``reference_check_seconds``: ``dangling_references`` while rows name objects
        missing from their bucket (:mod:`.references`)."""
        interval = self.settings.reference_check_seconds
        now = self.clock()
        if interval <= 0 or self.creds is None or self.s3_client is None:
            return
        if self._references_checked is not None and \
                (now - self._references_checked).total_seconds() < interval:
            return
        self._references_checked = now
        references.check(self.settings, self.creds, self.s3_client(), self.alerts)
