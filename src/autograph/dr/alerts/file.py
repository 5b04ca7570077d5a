"""File channel: alerts appended as JSON lines (default ``var/log/alerts.log``, set elsewhere)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autograph.dr.alerts.models import Alert
from autograph.errors import OperationFailed


@dataclass
class FileChannel:
    """Appends each alert notice as one JSON line to ``path``, creating its folder if needed.

    Each line is written with a single ``O_APPEND`` write, so several processes can share the file.
    """

    path: Path
    name: str = "file"

    def send(self, alert: Alert) -> None:
        """Append one line; raises OperationFailed if the folder or file cannot be written."""
        line = (alert.json_line() + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                written = os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OperationFailed(f"cannot append to {self.path}: {exc.strerror}") from None
        if written != len(line):
            raise OperationFailed(f"short write to {self.path}: {written} of {len(line)} bytes")
