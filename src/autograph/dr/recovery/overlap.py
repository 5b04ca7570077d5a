"""Work of a recovery step started early, in the background, and joined by a later step.

A whole-stack recovery restores the database and the buckets to the one recovery point chosen
in ``assess`` (the database replayed to T, each bucket from its newest snapshot finished by T,
:mod:`.consistent`), so the order of the two restores does not matter for consistency: the
bucket restore starts beside the database restore. Only the outbox replay needs the restored
database; it runs in the ``restore_buckets`` step, after both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Background:
    """``work`` running in a thread of its own from construction; :meth:`result` joins it."""

    def __init__(self, work: Callable[[], dict[str, Any]], name: str) -> None:
        self._box: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], dict[str, Any]]) -> None:
        try:
            self._box["value"] = work()
        except BaseException as exc:  # handed to whoever joins
            self._box["error"] = exc

    def result(self) -> dict[str, Any]:
        """Wait for the work; its result, or what it raised, raised here."""
        self._thread.join()
        if "error" in self._box:
            raise self._box["error"]
        return dict(self._box["value"])

    def settle(self) -> None:
        """Wait for the work to end, whatever it did (nothing is left writing after a failed
        step)."""
        self._thread.join()
