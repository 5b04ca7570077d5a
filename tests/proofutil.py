"""Test support for restore tests: a home of its own (traversable by the server's user, for
the scratch cluster) on the session's real stack, with an isolated database, backup folder,
backup buckets and one application bucket; and a clock the test moves."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autograph.config import Settings
from autograph.dr.drill.report import HistoryEntry
from autograph.dr.proof.models import ProofRecord
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack
from dbbackups import isolated_settings
from stackutil import make_home, remove_home

T0 = datetime(2024, 3, 10, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ProofEnv:
    settings: Settings
    bucket: str
    client: object


@contextmanager
def proof_settings(stack: Stack, tmp_path: Path, **overrides: object) -> Iterator[ProofEnv]:
    """Everything of the test's own; the streamed WAL is the session stack's (linked)."""
    home = make_home("autograph-proof-")
    token = secrets.token_hex(4)
    bucket = f"t-proofapp-{token}"
    try:
        with isolated_settings(stack, tmp_path) as base:
            shutil.copytree(stack.settings.secrets_dir, home / "secrets")
            settings = base.model_copy(update={
                "home": home, "backup_bucket_objects": f"t-proofbk-{token}",
                "app_buckets": (bucket,), "scheduler_enabled": True, "proof_enabled": True,
                "snapshot_interval_seconds": 120, "backup_storage_min_free_bytes": 0,
                "disk_usage_alert_percent": 100.0, **overrides})
            settings.backups_dir.mkdir(parents=True, exist_ok=True)
            (settings.backups_dir / "wal").symlink_to(stack.settings.backups_dir / "wal")
            client = app_client(settings, stack.creds)
            for name in (bucket, settings.backup_bucket_objects):
                client.create_bucket(Bucket=name)
            for i in range(20):
                client.put_object(Bucket=bucket, Key=f"docs/{i}.json",
                                  Body=(f'{{"n": {i}}}' * (i + 1)).encode())
            try:
                yield ProofEnv(settings, bucket, client)
            finally:
                for name in (bucket, settings.backup_bucket_objects):
                    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                        for item in page.get("Contents", []):
                            client.delete_object(Bucket=name, Key=item["Key"])
                    client.delete_bucket(Bucket=name)
    finally:
        remove_home(home)


def stand_in_drill(settings: Settings, clock: Clock, calls: list[datetime]):  # type: ignore[no-untyped-def]
    """A drill that records itself as a real one does (``drills.jsonl``), instantly; the
    real sandbox drill is covered by tests/e2e/test_proof_drill.py."""

    def drill(scenario: str) -> ProofRecord:
        calls.append(clock())
        report = str(settings.dr_dir / "reports" / f"{clock():%Y%m%dT%H%M%S}-{scenario}")
        entry = HistoryEntry(scenario=scenario, mode="sandbox", started_at=clock(),
                             finished_at=clock(), passed=True, rto_seconds=30.0,
                             rpo_seconds=1.0, report=report)
        settings.dr_dir.mkdir(parents=True, exist_ok=True)
        with open(settings.dr_dir / "drills.jsonl", "a") as handle:
            handle.write(entry.model_dump_json() + "\n")
        return ProofRecord(kind="drill", status="passed", started_at=clock(),
                           finished_at=clock(), duration_seconds=0.0, method="drill",
                           evidence=report, rto_seconds=30.0, rpo_seconds=1.0)

    return drill
