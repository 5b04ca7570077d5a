"""The retry budget of one S3 request: backoff attempts after errors, and immediate re-sends
after a pooled keep-alive link turned out to be closed by the server."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Attempts:
    """How many more times one request may go out, and how long to wait before it does."""

    retries: int
    pool_size: int
    attempt: int = 0
    stale: int = 0
    delay: float = 0.2

    def stale_link(self, reused: bool) -> bool:
        """Whether to re-send at once on a new link: the failed link was a reused one (the
        server closed it while idle, so, likely, the other idle ones too), at most once per
        pooled link."""
        if reused and self.stale < self.pool_size:
            self.stale += 1
            return True
        return False

    def back_off(self, *, first_at_once: bool) -> bool:
        """Wait before the next attempt (doubling each time; the first without waiting when
        ``first_at_once``) and return True, or return False when the retries are spent."""
        if self.attempt >= self.retries:
            return False
        time.sleep(0 if first_at_once and not self.attempt else self.delay)
        self.attempt += 1
        self.delay *= 2
        return True
