"""The typed data the recovery's steps hand each other (recorded in the state file and the
report, read back with ``model_validate``): what ``assess`` found and the backups it chose."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from autograph.dr.recovery.consistent import RecoveryPoint

DatabaseMethod = Literal["dump", "physical"]


class RecoveryPlan(BaseModel):
    """The candidate backups, newest first: database dumps, base backups and, per application
    bucket, snapshots then archives; how many were passed over unverified, which tiers could not
    be read, and how the database comes back (``physical``: base backup + WAL)."""

    database: list[str] = Field(default_factory=list)
    base: list[str] = Field(default_factory=list)
    buckets: dict[str, list[str]] = Field(default_factory=dict)
    unverified: dict[str, int] = Field(default_factory=lambda: {"database": 0, "buckets": 0})
    unreachable: dict[str, str] = Field(default_factory=dict)
    method: DatabaseMethod = "dump"


class Assessment(BaseModel):
    """What the ``assess`` step found: each component's state, what is down, the recovery
    point, the plan, and the issues to report (``offsite``: the machine scenario's probe)."""

    components: dict[str, dict[str, Any]]
    down: list[str]
    issues: list[str] = Field(default_factory=list)
    offsite: dict[str, Any] | None = None
    postgres_cluster: bool
    point: RecoveryPoint
    plan: RecoveryPlan

    def as_data(self) -> dict[str, Any]:
        """The step's recorded data (``offsite`` only when probed)."""
        return self.model_dump(mode="json", exclude={"offsite"} if self.offsite is None else None)
