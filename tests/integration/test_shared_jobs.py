"""Jobs (``wait=false``) are visible from any gateway: two job registries, as two gateway
processes on different hosts would hold, share them through the backup S3 bucket."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from autograph.dr.ops.jobs import JobRegistry
from autograph.dr.ops.jobstore import S3JobStore
from autograph.errors import NotFound, OperationFailed
from autograph.s3.boto import backup_client, ensure_buckets
from autograph.stack.lifecycle import Stack


@pytest.fixture
def registries(infra_stack: Stack) -> tuple[JobRegistry, JobRegistry]:
    bucket = f"jobs-{secrets.token_hex(4)}"
    client = backup_client(infra_stack.settings, infra_stack.creds)
    ensure_buckets(client, [bucket])
    here, there = JobRegistry(), JobRegistry()
    here.use_store(S3JobStore(client, bucket))
    there.use_store(S3JobStore(client, bucket))
    return here, there


def _wait(registry: JobRegistry, job_id: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while registry.get(job_id).status != status:
        assert time.monotonic() < deadline, registry.get(job_id)
        time.sleep(0.05)


def test_another_gateway_answers_for_a_running_then_finished_job(
        registries: tuple[JobRegistry, JobRegistry]) -> None:
    here, there = registries
    go = threading.Event()

    def work(progress: object) -> dict[str, str]:
        progress("restoring", 0.5)  # type: ignore[operator]
        go.wait(10)
        return {"backup_name": "manual_backup_1"}

    job = here.submit("backup.restore", work)
    seen = there.get(job.id)
    assert seen.kind == "backup.restore" and seen.status == "running"
    go.set()
    _wait(there, job.id, "succeeded")
    assert there.get(job.id).result == {"backup_name": "manual_backup_1"}


def test_a_failed_job_shows_its_error_everywhere_and_unknown_ids_stay_unknown(
        registries: tuple[JobRegistry, JobRegistry]) -> None:
    here, there = registries

    def work(progress: object) -> None:
        raise OperationFailed("pg_restore failed (exit 1)")

    job = here.submit("backup.restore", work)
    _wait(there, job.id, "failed")
    failed = there.get(job.id)
    assert failed.error == "pg_restore failed (exit 1)" and failed.error_status == 500
    with pytest.raises(NotFound):
        there.get(secrets.token_hex(16))
