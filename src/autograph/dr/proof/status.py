"""What ``dr status`` and ``/metrics`` show of the proofs: per kind, when a backup of it was
last proven restorable (time, method, duration, evidence), and the last drill's RTO and RPO."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from autograph.dr.drill.report import load_history
from autograph.dr.proof.models import PROVEN_KINDS, ProofKind, last_of, load


class ProvenKind(BaseModel):
    """One kind: its last passed restore test, and how the last attempt went."""

    kind: ProofKind
    last_proven_at: datetime | None = None
    method: str | None = None
    duration_seconds: float | None = None
    evidence: str | None = None
    compared: str | None = None
    last_status: str | None = None
    last_detail: str | None = None


class LastDrill(BaseModel):
    """The newest drill of the history, with its measured RTO and RPO."""

    finished_at: datetime
    scenario: str
    mode: str
    passed: bool
    rto_seconds: float | None
    rpo_seconds: float | None
    report: str


def proven(dr_dir: Path, kinds: tuple[ProofKind, ...] | list[ProofKind] = PROVEN_KINDS
           ) -> list[ProvenKind]:
    """Per kind, from the proof history."""
    history = load(dr_dir)
    result = []
    for kind in kinds:
        passed, last = last_of(history, kind, "passed"), last_of(history, kind)
        result.append(ProvenKind(
            kind=kind, last_proven_at=passed.finished_at if passed else None,
            method=passed.method if passed else None,
            duration_seconds=passed.duration_seconds if passed else None,
            evidence=passed.evidence if passed else None,
            compared=passed.compared if passed else None,
            last_status=last.status if last else None,
            last_detail=last.detail if last else None))
    return result


def last_drill(dr_dir: Path) -> LastDrill | None:
    """The newest drill recorded in ``drills.jsonl``."""
    drills = load_history(dr_dir)
    if not drills:
        return None
    last = max(drills, key=lambda d: d.finished_at)
    return LastDrill(finished_at=last.finished_at, scenario=last.scenario, mode=last.mode,
                     passed=last.passed, rto_seconds=last.rto_seconds,
                     rpo_seconds=last.rpo_seconds, report=last.report)
