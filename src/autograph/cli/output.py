"""What the CLI edge shares: JSON output, one-line errors, progress."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(stderr=True)


def emit_json(data: Any) -> None:
    """Print data as JSON on stdout (pydantic models and dataclasses included)."""
    print(json.dumps(_plain(data), indent=2, default=str))


def _plain(data: Any) -> Any:
    from pydantic import BaseModel  # here, not at the top: keeps `autograph` start-up fast

    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if hasattr(data, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(data)
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    return data


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
