"""What the CLI edge shares: JSON output, one-line errors, progress."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A rich ``Console`` made on first use: importing rich is a noticeable part of start-up
    that ``--help``, and commands that fail before printing, need not pay."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """The Console itself (for rich objects that take one, such as ``Progress``)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    @property
    def is_terminal(self) -> bool:
        """Rich's answer, without importing rich when it cannot be yes: the stream is not a
        TTY and none of the variables that make rich treat it as a terminal is set."""
        stream = sys.stderr if self._stderr else sys.stdout
        isatty = getattr(stream, "isatty", None)
        if (self._console is None and not any(os.environ.get(v) is not None for v in _TTY_VARS)
                and isatty is not None and not isatty()):
            return False
        return bool(self.rich.is_terminal)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)


_TTY_VARS = ("TTY_COMPATIBLE", "FORCE_COLOR", "TTY_INTERACTIVE")
"""Environment variables by which rich may call a stream that is not a TTY a terminal."""


console = LazyConsole(stderr=True)


def emit_json(data: Any) -> None:
    """Print data as JSON on stdout (pydantic models and dataclasses included)."""
    from autograph.dr.models import jsonable  # here, not at the top: keeps start-up fast

    print(json.dumps(jsonable(data), indent=2, default=str))


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def human_size(n: int | None) -> str:
    """``18.4 KiB``: sizes in tables and messages (``--json`` keeps bytes)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float | None) -> str:
    """``45 s``, ``4 min``, ``3 h 5 min``, ``2 d 4 h``: ages in tables (``--json`` keeps
    seconds)."""
    if seconds is None:
        return "never"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        minutes = (s % 3600) // 60
        return f"{s // 3600} h" + (f" {minutes} min" if minutes else "")
    hours = (s % 86400) // 3600
    return f"{s // 86400} d" + (f" {hours} h" if hours else "")
