"""Console channel: every alert as one JSON line on standard output."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from autograph.dr.alerts.models import Alert


@dataclass
class ConsoleChannel:
    """Writes each alert notice as a JSON line to ``stream`` (standard output by default)."""

    name: str = "console"
    stream: TextIO | None = field(default=None, repr=False)

    def send(self, alert: Alert) -> None:
        """Write one JSON line and flush; raises OSError if the stream is closed or broken."""
        out = self.stream if self.stream is not None else sys.stdout
        out.write(alert.json_line() + "\n")
        out.flush()
