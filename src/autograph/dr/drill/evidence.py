"""Everything one drill saw, filled in as it goes and judged by :mod:`.measure`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autograph.dr.drill.models import Screenshot, Targets
from autograph.dr.drill.rpo import DataLoss
from autograph.dr.models import Scenario, StepRecord
from autograph.dr.recovery.integrity import Fingerprint
from autograph.dr.recovery.report import RecoveryReport

RESTORES_DATABASE = ("complete", "database", "machine")
RESTORES_OBJECTS = ("complete", "objects", "machine")


@dataclass
class Evidence:
    """Everything one drill saw, filled in as it goes."""

    scenario: Scenario
    targets: Targets
    schedule: dict[str, int | None]  # backup interval per kind; None: continuous (WAL)
    components: list[str]
    workload: dict[str, Any] = field(default_factory=dict)
    at_backup: dict[str, Fingerprint] = field(default_factory=dict)  # backup name -> state
    backups_taken: list[dict[str, Any]] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    before: Fingerprint | None = None
    after: Fingerprint | None = None
    dangling: dict[str, Any] | None = None
    dangling_before: dict[str, Any] | None = None  # already there before the failure
    restored_keys: dict[str, set[str]] = field(default_factory=dict)  # bucket -> backup keys
    failure_at: datetime | None = None
    fault: dict[str, Any] | None = None
    recovery: RecoveryReport | None = None
    pause_seconds: float = 0.0
    rpo_database: DataLoss | None = None
    rpo_objects: DataLoss | None = None
    relogin: dict[str, Any] | None = None
    dataset_check: dict[str, Any] | None = None
    verify_checks: dict[str, Any] | None = None
    volatile: dict[str, list[str]] = field(default_factory=dict)  # changed during a backup
    issues: list[str] = field(default_factory=list)
    screenshots: list[Screenshot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # screenshots not taken, and why

    def step(self, name: str) -> StepRecord | None:
        """A recovery step's result, if it ran."""
        if self.recovery is None:
            return None
        return next((s for s in self.recovery.steps if s.name == name), None)

    def checks(self) -> dict[str, Any]:
        """The verification checks: the recovery's own, else those the drill ran itself."""
        verify = self.step("verify")
        if verify is not None and "checks" in verify.data:
            return dict(verify.data["checks"])
        return dict(self.verify_checks or {})
