"""The proof schedule and alert rules over real history files and locks (no servers): a drill
skipped while a backup runs, the drill alerts with their evidence, a stale proof; and the
live-bucket comparison."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from alertservers import free_port
from autograph.config import Settings, load_settings
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.file import FileChannel
from autograph.dr.drill.report import HistoryEntry
from autograph.dr.monitor.monitor import Monitor
from autograph.dr.ops import locks
from autograph.dr.proof.models import ProofRecord, append
from autograph.dr.proof.objects import compare_live
from autograph.dr.proof.run import Prover
from autograph.dr.proof.schedule import ProofScheduler
from autograph.secrets import Credentials
from proofutil import T0, Clock, stand_in_drill

DAY = timedelta(days=1)


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", backup_dir=tmp_path / "backups",
                         pg_port=free_port(), app_buckets=(), scheduler_enabled=True,
                         proof_enabled=True, backup_overdue_margin_seconds=3600)


def passed(kind: str, at: datetime) -> ProofRecord:
    return ProofRecord(kind=kind, status="passed", started_at=at,  # type: ignore[arg-type]
                       finished_at=at, duration_seconds=1.0, backups=[f"{kind}_x"],
                       evidence=f"{kind}_x")


def drill_line(settings: Settings, at: datetime, ok: bool) -> None:
    settings.dr_dir.mkdir(parents=True, exist_ok=True)
    entry = HistoryEntry(scenario="complete", mode="sandbox", started_at=at, finished_at=at,
                         passed=ok, rto_seconds=40.0, rpo_seconds=2.0, report=f"/r/{at:%d}")
    with open(settings.dr_dir / "drills.jsonl", "a") as handle:
        handle.write(entry.model_dump_json() + "\n")


def test_the_drill_is_due_weekly_and_skipped_while_a_backup_runs(tmp_path: Path) -> None:
    settings, clock = settings_for(tmp_path), Clock(T0 + 7 * DAY)
    for kind in ("database", "basebackup"):
        append(settings.dr_dir, passed(kind, clock.now))
    drill_line(settings, T0, True)
    calls: list[datetime] = []
    prover = Prover(settings, Credentials(*["unused"] * 7), clock=clock)
    scheduler = ProofScheduler(settings, prover, clock=clock,
                               drill=stand_in_drill(settings, clock, calls), startup_delay=0)
    plan = {p.kind: p.next_run_at for p in scheduler.plan()}
    assert plan == {"database": T0 + 8 * DAY, "basebackup": T0 + 8 * DAY, "drill": T0 + 7 * DAY}
    with locks.acquire(settings.backups_dir, "database", "create", "scheduled_backup_x"):
        assert scheduler.tick() == []
    assert calls == []
    assert [r.kind for r in scheduler.tick()] == ["drill"]
    assert scheduler.tick() == []
    assert calls == [T0 + 7 * DAY]


def notices(dispatcher: AlertDispatcher, log: Path) -> list[str]:
    assert dispatcher.flush(timeout=30)
    if not log.exists():
        return []
    return [f"{a['key']} {a['status']}" for a in map(json.loads, log.read_text().splitlines())]


def test_drill_and_stale_proof_alerts_fire_once_with_evidence_and_resolve(
        tmp_path: Path) -> None:
    settings, clock = settings_for(tmp_path), Clock(T0)
    log = tmp_path / "alerts.log"
    dispatcher = AlertDispatcher([FileChannel(log)], clock, backoff_seconds=0.0)
    monitor = Monitor(settings, dispatcher, {}, clock=clock)
    try:
        for kind in ("database", "basebackup"):
            append(settings.dr_dir, passed(kind, T0))
        drill_line(settings, T0, False)
        monitor.check_proofs()
        monitor.check_proofs()
        assert notices(dispatcher, log) == ["drill_failed firing"]
        assert dispatcher.active()[0].details["evidence"] == "/r/10"

        clock.now = T0 + 2 * DAY + timedelta(seconds=1)
        append(settings.dr_dir, passed("basebackup", clock.now))
        drill_line(settings, clock.now, True)
        monitor.check_proofs()
        monitor.check_proofs()
        assert notices(dispatcher, log)[1:] == ["proof_stale:database firing",
                                                "drill_failed resolved"]

        clock.now = T0 + 9 * DAY + timedelta(hours=1, seconds=2)
        append(settings.dr_dir, passed("database", clock.now))
        append(settings.dr_dir, passed("basebackup", clock.now))
        monitor.check_proofs()
        assert notices(dispatcher, log)[3:] == ["proof_stale:database resolved",
                                                "drill_overdue firing"]
    finally:
        dispatcher.close()


def test_the_live_comparison_counts_changes_and_fails_only_for_wrong_or_missed_objects(
        ) -> None:
    began = datetime(2026, 1, 1, 12, 0, 0).astimezone()
    old, new = "2026-01-01T11:00:00.000Z", "2026-01-02T00:00:00.000Z"
    backed_up = {"same": '"a"', "edited": '"b"', "gone": '"c"', "garbled": '"d"'}
    live = [("same", "a", old), ("edited", "B", new), ("added", "e", new),
            ("garbled", "X", old), ("forgotten", "f", old)]
    result = compare_live(backed_up, live, began)
    assert (result.same, result.changed_since, result.added_since, result.deleted_since) == \
        (1, 1, 1, 1)
    assert result.wrong == ["garbled"] and result.missed == ["forgotten"]
