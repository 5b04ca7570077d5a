"""The failure hook: a tiny in-process event bus the backup managers publish to.

The alerting code subscribes with :func:`on_event`; managers call :func:`emit`. Events:
``backup_failed``, ``backup_succeeded``, ``verification_failed``, ``verification_passed``,
``backup_small``, ``restore_failed``, ``restore_succeeded``. A subscriber that raises is logged
and never affects the backup or the other subscribers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from autograph.clock import utc_now
from autograph.errors import AutographError, IntegrityError, OperationFailed

EventName = Literal[
    "backup_failed", "backup_succeeded", "verification_failed", "verification_passed",
    "backup_small", "restore_failed", "restore_succeeded",
]

log = logging.getLogger("autograph.dr.ops.hooks")


@dataclass(frozen=True)
class BackupEvent:
    """Something that happened to a backup of ``kind`` (``database`` or ``bucket``).

    ``name`` is the backup's name (None when the failure came before one existed);
    ``detail`` is a one-line human message; ``data`` holds numbers (sizes, durations).
    """

    event: EventName
    kind: str
    name: str | None
    detail: str
    at: datetime = field(default_factory=utc_now)
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[BackupEvent], None]


class EventBus:
    """Subscribers called synchronously, in order, for every emitted event."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Register ``callback``; return a function that unregisters it."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: BackupEvent) -> None:
        """Deliver ``event`` to every subscriber; their exceptions are logged, not raised."""
        log.info("backup event", extra={"event": event.event, "kind": event.kind,
                                        "backup": event.name, "detail": event.detail})
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception as exc:
                log.warning("backup event subscriber failed",
                            extra={"event": event.event, "error": type(exc).__name__})


bus = EventBus()
"""The process-wide bus."""


def on_event(callback: Subscriber) -> Callable[[], None]:
    """Subscribe to the process-wide bus; return the unsubscribe function."""
    return bus.subscribe(callback)


def emit(event: BackupEvent) -> None:
    """Publish on the process-wide bus."""
    bus.emit(event)


@dataclass
class Failing:
    """What :func:`reporting` names in its failure event (``name`` may be set in the block,
    once the backup has one)."""

    name: str | None


@contextlib.contextmanager
def reporting(event: EventName, kind: str, name: str | None, *, what: str | None = None,
              prefix: str = "", data: dict[str, Any] | None = None) -> Iterator[Failing]:
    """Emit ``event`` (e.g. ``backup_failed``) when the block raises, then re-raise.

    An AutographError is re-raised as it is. With ``what`` (``"backup NAME"``), any other
    exception becomes OperationFailed("``what`` failed: Type: message"); without it, it passes
    through unreported. ``prefix`` starts the event's detail (``"bucket diagrams: "``).
    """
    failing = Failing(name)
    try:
        yield failing
    except AutographError as exc:
        emit(BackupEvent(event, kind, failing.name, prefix + exc.message, data=dict(data or {})))
        raise
    except Exception as exc:
        if what is None:
            raise
        failure = OperationFailed(f"{what} failed: {type(exc).__name__}: {exc}")
        emit(BackupEvent(event, kind, failing.name, prefix + failure.message,
                         data=dict(data or {})))
        raise failure from exc


def verification_failed(kind: str, name: str, detail: str | None) -> IntegrityError:
    """Emit ``verification_failed`` for backup ``name``; return the IntegrityError to raise."""
    emit(BackupEvent("verification_failed", kind, name, detail or "verification failed"))
    return IntegrityError(f"backup {name} failed verification: {detail}")
