"""What an operator asks a recovery for: the scenario, named backups, a point in time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autograph.clock import isoformat
from autograph.dr.models import SCENARIOS, Scenario
from autograph.errors import InvalidInput


@dataclass(frozen=True)
class RecoveryOptions:
    """What to recover and from what."""

    scenario: Scenario
    backups: tuple[str, ...] = ()  # named backups (database and/or bucket ones)
    to: datetime | None = None     # use the newest backups created at or before this time
    timeouts: dict[str, float] = field(default_factory=dict)
    clean_orphans: bool = False    # delete objects whose rows were lost (after the point)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InvalidInput(f"unknown scenario {self.scenario!r} "
                               f"(choose from {', '.join(SCENARIOS)})")
        if self.to is not None and self.to.tzinfo is None:
            raise InvalidInput("--to needs a time zone (e.g. 2026-01-05T09:00:00Z)")

    def params(self) -> dict[str, Any]:
        """The parameters that identify a run (a resumed run must have the same)."""
        return {"scenario": self.scenario, "backups": sorted(self.backups),
                "to": isoformat(self.to) if self.to else None}
