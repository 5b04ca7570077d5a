"""Service health from probes of the stack's components: ``database_unreachable``,
``s3_unreachable`` and ``backup_s3_unreachable`` after a few failed probes in a row,
``service_unhealthy:<name>`` after unhealthy for longer than ``unhealthy_alert_seconds``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from autograph.clock import isoformat
from autograph.dr.monitor.state import MonitorState
from autograph.dr.monitor.watched import Watched
from autograph.stack.health import Health

UNREACHABLE_RULES: dict[str, str] = {"database": "database_unreachable", "s3": "s3_unreachable",
                                     "backup_s3": "backup_s3_unreachable"}


class HealthChecks(MonitorState):
    """Probes the watched components concurrently and counts failures across passes."""

    def check_health(self) -> None:
        """Probe every watched component (concurrently) and fire or resolve its alert."""
        if not self.watched:
            return

        def probe(item: Watched) -> Health:
            try:
                return item.probe()
            except Exception as exc:  # a probe that raises reports the component down
                return Health(False, type(exc).__name__)

        with ThreadPoolExecutor(min(8, len(self.watched)), thread_name_prefix="probe") as pool:
            results = list(pool.map(probe, self.watched))
        now = self.clock()
        for item, health in zip(self.watched, results, strict=True):
            if item.role == "service":
                self._service(item, health, now)
            else:
                self._dependency(item, health)

    def _dependency(self, item: Watched, health: Health) -> None:
        rule = UNREACHABLE_RULES[item.role]
        if health.healthy:
            self._failures.pop(item.name, None)
            self.alerts.resolve(rule)
            return
        count = self._failures[item.name] = self._failures.get(item.name, 0) + 1
        if count >= self.settings.unreachable_alert_checks:
            what = {"database": "PostgreSQL", "s3": "S3 object storage",
                    "backup_s3": "the backup S3 server"}[item.role]
            self.fire(rule, rule, "critical",
                      f"{what} is unreachable ({count} failed checks): {health.detail}",
                      component=item.name, detail=health.detail)

    def _service(self, item: Watched, health: Health, now: datetime) -> None:
        key = f"service_unhealthy:{item.name}"
        if health.healthy:
            self._unhealthy_since.pop(item.name, None)
            self.alerts.resolve(key)
            return
        since = self._unhealthy_since.setdefault(item.name, now)
        if (now - since).total_seconds() >= self.settings.unhealthy_alert_seconds:
            self.fire(key, "service_unhealthy", "critical",
                      f"{item.name} has been unhealthy for {(now - since).total_seconds():.0f}"
                      f" s: {health.detail}", service=item.name, since=isoformat(since),
                      detail=health.detail)
