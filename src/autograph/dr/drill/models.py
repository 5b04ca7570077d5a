"""The drill report (SPEC §8, ``report.json``) and the plan's success-criteria checklist.

``passed`` is derived, never set: true only when every success criterion is ``pass`` and both
targets were measured and met. A criterion nobody checked is ``not_checked``, never ``pass``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from autograph.dr.models import Scenario, StepRecord

CriterionStatus = Literal["pass", "fail", "not_checked"]

# The plan's "Success Criteria", word for word, in its order.
CRITERIA: tuple[str, ...] = (
    "All services recovered within 1 hour (RTO)",
    "Data loss < 5 minutes (RPO)",
    "All health checks passing",
    "User authentication working",
    "Diagram creation/retrieval working",
    "Real-time collaboration working",
    "Export functionality working",
    "No data corruption detected",
)


class Criterion(BaseModel):
    """One line of the checklist with the evidence behind its status."""

    item: str
    status: CriterionStatus
    evidence: str


class ServiceRecovery(BaseModel):
    """How long a component took from the failure (or its start) to healthy."""

    name: str
    recovery_seconds: float | None
    healthy: bool = False


class RpoFigures(BaseModel):
    """Data lost, measured from the writer's acknowledged writes (None: not measured)."""

    database_seconds: float | None = None
    database_writes_lost: int | None = None
    database_writes_acknowledged: int | None = None
    objects_seconds: float | None = None
    objects_lost: int | None = None
    objects_acknowledged: int | None = None


class Targets(BaseModel):
    """The objectives a drill is judged against (the plan: 1 h and 5 min)."""

    rto_seconds: float = 3600
    rpo_seconds: float = 300
    database_rpo_seconds: float | None = None  # a tighter bound for one kind (machine: 60 s)
    objects_rpo_seconds: float | None = None   # (machine: the snapshot interval)


Moment = Literal["before_failure", "after_recovery"]


class Screenshot(BaseModel):
    """A PNG in the report folder (the plan's "Take screenshots"): evidence, not a criterion."""

    moment: Moment
    page: Literal["dr_console", "diagram"]
    file: str  # relative to the report folder
    alt: str


class DrillReport(BaseModel):
    """Everything one drill measured (SPEC §8), plus where it ran and what it used."""

    scenario: Scenario
    mode: Literal["sandbox", "live"] = "sandbox"
    started_at: datetime
    finished_at: datetime
    failure_at: datetime | None = None
    recovered_at: datetime | None = None
    rto_seconds: float | None = None
    rpo: RpoFigures = Field(default_factory=RpoFigures)
    targets: Targets = Field(default_factory=Targets)
    steps: list[StepRecord] = Field(default_factory=list)
    services: list[ServiceRecovery] = Field(default_factory=list)
    database_restore_seconds: float | None = None
    objects_restore_seconds: float | None = None
    backups: dict[str, Any] = Field(default_factory=dict)
    workload: dict[str, Any] = Field(default_factory=dict)
    integrity: dict[str, Any] = Field(default_factory=dict)
    success_criteria: list[Criterion] = Field(default_factory=list)
    issues: list[str] = Field(default_factory=list)
    action_items: list[str] = Field(default_factory=list)
    screenshots: list[Screenshot] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # about the evidence, never a verdict

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rto_met(self) -> bool:
        """True when the RTO was measured and is within target."""
        return self.rto_seconds is not None and self.rto_seconds <= self.targets.rto_seconds

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rpo_met(self) -> bool:
        """True when both RPO figures were measured and are within target."""
        t = self.targets
        pairs = ((self.rpo.database_seconds, t.database_rpo_seconds or t.rpo_seconds),
                 (self.rpo.objects_seconds, t.objects_rpo_seconds or t.rpo_seconds))
        return all(f is not None and f <= target for f, target in pairs)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """True only if every criterion passed and both targets were met."""
        return (bool(self.success_criteria)
                and all(c.status == "pass" for c in self.success_criteria)
                and self.rto_met and self.rpo_met)


def criterion(item: str, ok: bool | None, evidence: str) -> Criterion:
    """A checklist line: ``ok`` None means it was not checked."""
    status: CriterionStatus = "not_checked" if ok is None else ("pass" if ok else "fail")
    return Criterion(item=item, status=status, evidence=evidence)


def checklist(results: dict[str, tuple[bool | None, str]]) -> list[Criterion]:
    """The plan's eight criteria in order; any not in ``results`` is ``not_checked``.

    ``results`` maps a criterion's exact text to ``(ok or None, evidence)``. Raises ValueError
    for a key that is not one of the plan's criteria (a typo must not hide a check).
    """
    unknown = set(results) - set(CRITERIA)
    if unknown:
        raise ValueError(f"not success criteria of the plan: {sorted(unknown)}")
    lines = []
    for item in CRITERIA:
        ok, evidence = results.get(item, (None, "not checked by this drill"))
        lines.append(criterion(item, ok, evidence))
    return lines
