"""Which backups a recovery restores: named ones override the automatic choice of their kind,
and a refused backup falls back to the next older one (an unreachable server does not)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from autograph.dr.models import BackupEntry, Verification
from autograph.dr.recovery.backups import apply_named, restore_first
from autograph.dr.recovery.consistent import RecoveryPoint
from autograph.dr.recovery.step_data import Assessment, RecoveryPlan
from autograph.errors import DependencyDown, IntegrityError, InvalidInput, NotFound

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _entry(name: str, kind: str, source: str) -> BackupEntry:
    return BackupEntry(name=name, kind=kind, source=source, format="x",  # type: ignore[arg-type]
                       artifact=f"{name}.bin", created_at=T0, started_at=T0, finished_at=T0,
                       size_bytes=1, sha256="0" * 64,
                       verification=Verification(status="passed"))


def _automatic() -> RecoveryPlan:
    return RecoveryPlan(database=["dump2", "dump1"], base=["base1"],
                        buckets={"diagrams": ["d2", "d1"], "exports": ["e1"], "uploads": []})


CATALOG = {
    "database": [_entry("dump2", "database", "autograph"),
                 _entry("dump1", "database", "autograph")],
    "bucket": [_entry("d1", "bucket", "diagrams"), _entry("e0", "bucket", "exports"),
               _entry("x1", "bucket", "somewhere-else")],
    "base": [_entry("base1", "basebackup", "cluster")],
}


def _named(*names: str) -> RecoveryPlan:
    plan = _automatic()
    apply_named(plan, names, CATALOG["database"], CATALOG["bucket"], CATALOG["base"])
    return plan


def test_a_named_dump_replaces_the_database_choice_and_rules_out_base_backups() -> None:
    plan = _named("dump1")
    assert plan.database == ["dump1"] and plan.base == []
    assert plan.buckets["diagrams"] == ["d2", "d1"]  # other kinds keep the automatic choice


def test_a_named_base_backup_rules_out_the_dumps() -> None:
    plan = _named("base1")
    assert plan.base == ["base1"] and plan.database == []


def test_a_named_bucket_backup_replaces_only_its_bucket() -> None:
    plan = _named("d1", "e0")
    assert plan.buckets == {"diagrams": ["d1"], "exports": ["e0"], "uploads": []}
    assert plan.database == ["dump2", "dump1"]


def test_unknown_names_and_foreign_buckets_are_refused() -> None:
    with pytest.raises(NotFound, match="nope"):
        _named("nope")
    with pytest.raises(InvalidInput, match="somewhere-else"):
        _named("x1")


def test_a_refused_backup_falls_back_to_the_next_older_one() -> None:
    tried: list[str] = []

    def restore(name: str) -> dict[str, str]:
        tried.append(name)
        if name == "new":
            raise IntegrityError("no intact copy of backup new: local copy damaged (sha256 …)")
        return {"restored": name}

    outcome = restore_first(["new", "old"], restore)
    assert tried == ["new", "old"]
    assert outcome["backup"] == "old" and outcome["result"] == {"restored": "old"}
    assert outcome["refused"] == [{"backup": "new", "reason":
                                   "no intact copy of backup new: local copy damaged (sha256 …)"}]
    assert "backup new refused" in outcome["issues"][0]


def test_an_unreachable_server_stops_the_walk() -> None:
    tried: list[str] = []

    def restore(name: str) -> None:
        tried.append(name)
        raise DependencyDown("PostgreSQL unreachable")

    with pytest.raises(DependencyDown):
        restore_first(["new", "old"], restore)
    assert tried == ["new"]


def test_nothing_restorable_names_every_refusal() -> None:
    def restore(name: str) -> None:
        raise IntegrityError(f"{name} damaged")

    with pytest.raises(Exception, match="new damaged; old: old damaged"):
        restore_first(["new", "old"], restore)


def test_the_assessment_is_read_back_as_it_was_recorded() -> None:
    """What ``assess`` records (JSON in the state file) validates back into the same model,
    and the off-site probe is recorded only when it ran."""
    found = Assessment(components={"postgres": {"state": "RUNNING", "healthy": True}},
                       down=[], postgres_cluster=True, plan=_named("dump1"),
                       point=RecoveryPoint(point=T0, requested=None, consistent=True))
    data = json.loads(json.dumps(found.as_data()))
    assert "offsite" not in data and data["plan"]["method"] == "dump"
    again = Assessment.model_validate(data)
    assert again == found and again.point.point == T0 and again.plan.database == ["dump1"]
