"""What a drill is asked to do: its scenarios, the sandbox or the live stack, the dataset, the
backup rounds, the fault, the targets and the recovery's step timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field

from autograph.dr.drill import faults
from autograph.dr.drill.models import Targets
from autograph.dr.drill.workload import DatasetSpec
from autograph.dr.models import SCENARIOS, Scenario
from autograph.errors import InvalidInput


@dataclass(frozen=True)
class DrillOptions:
    """What to drill and how."""

    scenarios: tuple[Scenario, ...] = ("complete",)
    live: bool = False
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    lead_seconds: float = 1.0          # the writer commits this long before the first backup
    window_seconds: float = 3.0        # the writer commits this long after the last backup
    backup_rounds: int = 1             # backups taken, oldest first, writes between them
    corrupt_latest: bool = False       # bit rot in every copy of the newest backups
    database_fault: faults.DatabaseFault = "corrupt"
    targets: Targets | None = None
    keep_sandbox: bool = False
    recovery_timeouts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown or not self.scenarios:
            raise InvalidInput(f"unknown scenario(s) {unknown}: choose from "
                               f"{', '.join(SCENARIOS)} or all")
        if self.backup_rounds < 1 or (self.corrupt_latest and self.backup_rounds < 2):
            raise InvalidInput("corrupting the latest backups needs at least 2 backup rounds")
