"""Alert state (fire once, resolve once) and delivery to every channel off the caller's thread.

Each channel has its own worker thread and queue, so a hanging SMTP server or a webhook that
answers 500 delays only its own channel, never the caller (a backup, the monitor) nor the other
channels. A failed delivery is retried with exponential backoff, then logged and dropped. The
state (active alerts and recent history) can be kept in a JSON file so a restarted gateway does not
fire again what it already reported.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import JsonValue, ValidationError

from autograph.clock import Clock, utc_now
from autograph.dr.alerts import escalation as path
from autograph.dr.alerts import notifications
from autograph.dr.alerts.acks import AlertAck
from autograph.dr.alerts.models import Alert, Channel, Notification, Severity
from autograph.errors import AutographError, ConfigError, InvalidInput

logger = logging.getLogger(__name__)

STATE_VERSION = 1


def describe_failure(exc: BaseException) -> str:
    """What may be logged about a channel error: our errors' messages, only the type of others."""
    if isinstance(exc, AutographError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


class AlertDispatcher:
    """Keeps which alerts are firing and sends each change once to every channel.

    ``retry_attempts`` is how many times a failed delivery is retried (so ``1 + retry_attempts``
    tries in all), waiting ``backoff_seconds`` doubled after each failure, at most
    ``max_backoff_seconds``. ``escalation`` is the path of :mod:`.escalation` (see
    :meth:`escalate`); with ``notifications_path`` every notice handed to a channel is
    appended there as a JSON line (:class:`Notification`). Raises ConfigError for duplicate
    channel names or negative settings.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        clock: Clock = utc_now,
        *,
        retry_attempts: int = 3,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        state_path: Path | None = None,
        history_limit: int = 500,
        escalation: Sequence[path.EscalationLevel] = (),
        notifications_path: Path | None = None,
    ) -> None:
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ConfigError(f"alert channels need distinct names, got {names}")
        if retry_attempts < 0 or backoff_seconds < 0 or max_backoff_seconds < 0:
            raise ConfigError("alert retries and backoff must not be negative")
        if history_limit < 1:
            raise ConfigError("alert history_limit must be at least 1")
        self._clock = clock
        self._retry_attempts = retry_attempts
        self._backoff_seconds = backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._state_path = state_path
        self._history_limit = history_limit
        self._escalation = tuple(escalation)
        self._notifications_path = notifications_path
        self._log_lock = threading.Lock()

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._active: dict[str, Alert] = {}
        self._history: list[Alert] = []  # oldest first
        self._pending = dict.fromkeys(names, 0)
        self._failures = dict.fromkeys(names, 0)
        self._queues: dict[str, queue.Queue[Alert | None]] = {}
        self._threads: list[threading.Thread] = []
        self._load()
        for channel in channels:
            inbox: queue.Queue[Alert | None] = queue.Queue()
            self._queues[channel.name] = inbox
            thread = threading.Thread(
                target=self._work, args=(channel, inbox), name=f"alerts-{channel.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    # --- state -------------------------------------------------------------------------------

    def fire(
        self,
        key: str,
        rule: str,
        severity: Severity,
        message: str,
        details: dict[str, JsonValue] | None = None,
    ) -> bool:
        """Report that a condition holds; True only if it just started (and notices were queued).

        While ``key`` is firing, further calls are no-ops returning False. Never blocks on
        delivery. Raises InvalidInput for an unknown severity or details that are not JSON.
        """
        with self._lock:
            if key in self._active:
                return False
            first = path.initial(self._escalation)
            try:
                alert = Alert(
                    key=key,
                    rule=rule,
                    severity=severity,
                    message=message,
                    details=details or {},
                    started_at=self._clock(),
                    level=first.recipient if first else None,
                    escalations=(first.recipient,) if first else (),
                )
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(part) for part in problem["loc"])
                raise InvalidInput(f"alert {key!r}: {where}: {problem['msg']}") from None
            self._active[key] = alert
            self._history.append(alert)
            del self._history[: -self._history_limit]
            self._save()
            self._enqueue(alert)
        logger.info("alert %s firing (%s): %s", key, severity, message)
        return True

    def resolve(self, key: str) -> bool:
        """Report that a condition ended; True (and one resolved notice queued) if it was firing."""
        with self._lock:
            alert = self._active.pop(key, None)
            if alert is None:
                return False
            resolved = alert.model_copy(update={"status": "resolved",
                                                "resolved_at": self._clock()})
            for index in range(len(self._history) - 1, -1, -1):
                if self._history[index] == alert:
                    self._history[index] = resolved
                    break
            else:
                self._history.append(resolved)
                del self._history[: -self._history_limit]
            self._save()
            self._enqueue(resolved)
        logger.info("alert %s resolved", key)
        return True

    def escalate(self, acks: Mapping[str, AlertAck]) -> list[Alert]:
        """Send each active alert's newly due escalation level once (see :mod:`.escalation`);
        an alert acknowledged since it started or silenced now is skipped. Returns the
        ``escalated`` notices queued; the levels sent are kept with the alert (and saved)."""
        now = self._clock()
        notices = []
        with self._lock:
            for key, alert in list(self._active.items()):
                level = path.due(alert, self._escalation, acks.get(key), now)
                if level is None:
                    continue
                updated = alert.model_copy(update={
                    "level": level.recipient,
                    "escalations": (*alert.escalations, level.recipient)})
                self._replace(alert, updated)
                notice = updated.model_copy(update={"status": "escalated"})
                notices.append(notice)
                self._enqueue(notice, only=level.channels)
            if notices:
                self._save()
        for notice in notices:
            logger.info("alert %s escalated to %s", notice.key, notice.level)
        return notices

    def _replace(self, old: Alert, new: Alert) -> None:
        """Put ``new`` in place of ``old`` among the active alerts and the history (lock held)."""
        self._active[new.key] = new
        for index in range(len(self._history) - 1, -1, -1):
            if self._history[index] == old:
                self._history[index] = new
                break

    def is_firing(self, key: str) -> bool:
        """True while ``key`` has fired and not been resolved."""
        with self._lock:
            return key in self._active

    def active(self) -> list[Alert]:
        """The alerts firing now, newest first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.started_at, reverse=True)

    def recent(self, limit: int = 50) -> list[Alert]:
        """The last ``limit`` alerts, firing or resolved, newest first."""
        with self._lock:
            return list(reversed(self._history[-limit:])) if limit > 0 else []

    def failed_deliveries(self) -> dict[str, int]:
        """Per channel, how many notices were given up on after all retries."""
        with self._lock:
            return dict(self._failures)

    # --- delivery ----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None, channels: Iterable[str] | None = None) -> bool:
        """Wait until the named channels (default all) have delivered or given up on every
        queued notice. Returns False if ``timeout`` seconds passed first.

        Raises InvalidInput for a channel name the dispatcher does not have.
        """
        names = list(self._pending) if channels is None else list(channels)
        unknown = set(names) - set(self._pending)
        if unknown:
            raise InvalidInput(f"no alert channel named {', '.join(sorted(unknown))}")
        with self._idle:
            return self._idle.wait_for(
                lambda: all(self._pending[name] == 0 for name in names), timeout
            )

    def close(self, timeout: float = 5.0) -> None:
        """Give queued notices up to ``timeout`` seconds, then stop retrying and stop the
        workers. Notices still undelivered are dropped (and logged)."""
        self.flush(timeout)
        self._closing.set()
        for inbox in self._queues.values():
            inbox.put(None)
        for thread in self._threads:
            thread.join(timeout=0.5)

    def _enqueue(self, alert: Alert, only: Sequence[str] = ()) -> None:
        """Queue a notice for every channel, or the ``only`` ones this dispatcher has (caller
        holds the lock)."""
        if self._closing.is_set():
            logger.warning("alert %s %s not sent: dispatcher is closed", alert.key, alert.status)
            return
        names = [name for name in self._queues if not only or name in only]
        if not names:  # none of the level's channels is configured: never drop a notice
            logger.warning("alert %s: no configured channel among %s; sent on every channel",
                           alert.key, ", ".join(only))
            names = list(self._queues)
        for name, inbox in self._queues.items():
            if name not in names:
                continue
            self._pending[name] += 1
            inbox.put(alert)

    def _work(self, channel: Channel, inbox: queue.Queue[Alert | None]) -> None:
        while (alert := inbox.get()) is not None:
            delivered = self._deliver(channel, alert)
            self._log_notice(channel.name, alert, delivered)
            with self._idle:
                self._pending[channel.name] -= 1
                if not delivered:
                    self._failures[channel.name] += 1
                self._idle.notify_all()

    def _deliver(self, channel: Channel, alert: Alert) -> bool:
        tries = 1 + self._retry_attempts
        for attempt in range(1, tries + 1):
            try:
                channel.send(alert)
                return True
            except Exception as exc:  # a channel's failure must never end its worker
                reason = describe_failure(exc)
            if attempt == tries:
                break
            delay = min(self._backoff_seconds * 2 ** (attempt - 1), self._max_backoff_seconds)
            logger.warning(
                "alert %s %s: channel %s failed (try %d of %d), retrying in %.2f s: %s",
                alert.key,
                alert.status,
                channel.name,
                attempt,
                tries,
                delay,
                reason,
            )
            if self._closing.wait(delay):
                reason += " (dispatcher closing)"
                break
        logger.error(
            "alert %s %s not delivered to channel %s after %d tries: %s",
            alert.key,
            alert.status,
            channel.name,
            attempt,
            reason,
        )
        return False

    def _log_notice(self, channel: str, alert: Alert, delivered: bool) -> None:
        """Append the notice to the notifications log (a failure is logged, not raised)."""
        if self._notifications_path is None:
            return
        record = Notification(at=self._clock(), channel=channel, key=alert.key,
                              status=alert.status, severity=alert.severity, level=alert.level,
                              delivered=delivered, message=alert.message)
        try:
            with self._log_lock:
                notifications.append(self._notifications_path, record)
        except OSError as exc:
            logger.warning("notification log %s not written: %s", self._notifications_path, exc)

    # --- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        path = self._state_path
        if path is None or not path.exists():
            return
        try:
            state = json.loads(path.read_text())
            active = [Alert.model_validate(item) for item in state["active"]]
            history = [Alert.model_validate(item) for item in state["history"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("alert state %s unreadable, starting empty: %s", path, exc)
            return
        self._active = {alert.key: alert for alert in active}
        self._history = history[-self._history_limit :]

    def _save(self) -> None:
        """Write the state atomically (temporary file, rename); a failure is logged, not raised."""
        path = self._state_path
        if path is None:
            return
        state = {
            "version": STATE_VERSION,
            "active": [a.model_dump(mode="json") for a in self._active.values()],
            "history": [a.model_dump(mode="json") for a in self._history],
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(state, out)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            logger.warning("alert state %s not saved: %s", path, exc)
