"""The bucket-backup admin API (TestClient on the real router, real S3) and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from autograph.dr.api.routes import admin_router as router
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.services.common.app import create_app
from autograph.services.common.security import Principal, create_session
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, bucket_settings
from stackutil import free_port_block, settings_env

BAD_BACKUP_NAMES = ["../../etc/passwd", "a" * 200, "bäckup", "a/b", ".hidden"]
BAD_BUCKETS = ["ab", "UPPER", "under_score", "../etc", "a" * 64, "192.168.0.1"]


@pytest.fixture(scope="module")
def buckets(infra_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buckets]:
    """One backup folder and backup bucket for the module (tests use distinct names)."""
    with bucket_settings(infra_stack, tmp_path_factory.mktemp("objects-api")) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _own_buckets(buckets: Buckets) -> Iterator[None]:
    """Each test drops the buckets it made (the module's backup bucket stays)."""
    yield
    buckets.drop_all(keep=(buckets.settings.backup_bucket_objects,))


@pytest.fixture(scope="module")
def client(buckets: Buckets) -> Iterator[TestClient]:
    with TestClient(create_app("admin-test", buckets.settings, [router], {})) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(infra_stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {infra_stack.creds.admin_api_key}"}


def _session(infra_stack: Stack, role: str) -> dict[str, str]:
    async def make() -> str:
        redis = aioredis.Redis(host=infra_stack.settings.host,
                               port=infra_stack.settings.redis_port,
                               password=infra_stack.creds.redis_password)
        try:
            principal = Principal(user_id=7, email=f"{role}@example.com", role=role)  # type: ignore[arg-type]
            return await create_session(redis, principal, 300)
        finally:
            await redis.aclose()

    return {"Authorization": f"Bearer {asyncio.run(make())}"}


def _job(client: TestClient, admin: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/admin/jobs/{job_id}", headers=admin).json()
        if job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_buckets_create_list_verify_restore_delete(client: TestClient, admin: dict[str, str],
                                                   buckets: Buckets) -> None:
    source = buckets.make("api-src", {"a.json": (b"{}", "application/json", {"v": "1"}),
                                      "b/c.bin": os.urandom(5000)})
    listed = client.get("/api/admin/minio/buckets", headers=admin)
    assert listed.status_code == 200
    usage = {b["name"]: b for b in listed.json()["buckets"]}
    assert (usage[source]["object_count"], usage[source]["size_bytes"]) == (2, 5002)

    created = client.post("/api/admin/minio/backup/create",
                          params={"bucket": source, "backup_name": "api_one"}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {"name", "kind", "source", "created_at", "size_bytes", "sha256", "locations",
            "verification", "tags"} <= set(body)
    assert (body["name"], body["kind"], body["source"]) == ("api_one", "bucket", source)
    assert body["locations"] == ["local", "s3"] and body["verification"]["status"] == "passed"

    names = [b["name"] for b in client.get("/api/admin/minio/backup/list",
                                           headers=admin).json()["backups"]]
    assert "api_one" in names
    verified = client.post("/api/admin/minio/backup/verify?backup_name=api_one", headers=admin)
    assert verified.status_code == 200 and verified.json()["verification"]["status"] == "passed"

    target = buckets.name("api-dst")
    restored = client.post("/api/admin/minio/backup/restore",
                           params={"backup_name": "api_one", "target_bucket": target},
                           headers=admin)
    assert restored.status_code == 200, restored.text
    result = restored.json()
    assert result["status"] == "completed" and result["target_bucket"] == target
    assert (result["restored"], result["skipped"], result["failed"]) == (2, 0, 0)
    assert buckets.contents(target)["a.json"] == (b"{}", "application/json", {"v": "1"})

    deleted = client.delete("/api/admin/minio/backup/api_one", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["locations"] == ["local", "s3"]
    assert client.post("/api/admin/minio/backup/verify?backup_name=api_one",
                       headers=admin).status_code == 404


def test_overwrite_false_through_the_api_keeps_etags(client: TestClient, admin: dict[str, str],
                                                    buckets: Buckets) -> None:
    source = buckets.make("ow-src", {"k1": b"old", "k2": b"old"})
    assert client.post(f"/api/admin/minio/backup/create?bucket={source}&backup_name=ow",
                       headers=admin).status_code == 201
    buckets.put(source, "k1", b"changed after the backup")
    before = buckets.etags(source)
    kept = client.post("/api/admin/minio/backup/restore?backup_name=ow&overwrite=false",
                       headers=admin).json()
    assert (kept["skipped"], kept["restored"]) == (2, 0)
    assert buckets.etags(source) == before
    replaced = client.post("/api/admin/minio/backup/restore?backup_name=ow&overwrite=true",
                           headers=admin).json()
    assert replaced["restored"] == 2
    assert buckets.contents(source)["k1"][0] == b"old"


def test_wait_false_answers_202_and_the_job_has_the_result(
        client: TestClient, admin: dict[str, str], buckets: Buckets) -> None:
    source = buckets.make("job-src", {"x": b"1"})
    started = client.post(f"/api/admin/minio/backup/create?bucket={source}&backup_name=bg&"
                          "wait=false", headers=admin)
    assert started.status_code == 202
    job = _job(client, admin, started.json()["job_id"])
    assert (job["status"], job["kind"]) == ("succeeded", "minio.backup.create")
    assert job["result"]["name"] == "bg"
    restore = client.post("/api/admin/minio/backup/restore?backup_name=bg&wait=false&"
                          f"target_bucket={buckets.name('job-dst')}", headers=admin)
    assert restore.status_code == 202
    done = _job(client, admin, restore.json()["job_id"])
    assert done["status"] == "succeeded" and done["result"]["restored"] == 1


def test_create_without_a_bucket_backs_up_every_application_bucket(
        client: TestClient, admin: dict[str, str], buckets: Buckets) -> None:
    for bucket in buckets.settings.app_buckets:
        buckets.client.create_bucket(Bucket=bucket)
        buckets.put(bucket, "k", b"v")
    created = client.post("/api/admin/minio/backup/create", headers=admin)
    assert created.status_code == 201, created.text
    assert [b["source"] for b in created.json()["backups"]] == list(buckets.settings.app_buckets)


def test_a_second_operation_gets_409(client: TestClient, admin: dict[str, str],
                                     buckets: Buckets, infra_stack: Stack) -> None:
    manager = MinIOBucketBackupManager(buckets.settings, infra_stack.creds)
    bucket = buckets.make("x", {"k": "v"})
    with manager.acquire("restore", "something"):
        answer = client.post(f"/api/admin/minio/backup/create?bucket={bucket}",
                             headers=admin)
        assert answer.status_code == 409 and "already running" in answer.json()["detail"]


@pytest.mark.parametrize("bad", BAD_BACKUP_NAMES)
def test_bad_backup_names_are_400(client: TestClient, admin: dict[str, str], bad: str) -> None:
    for path, params in (("/api/admin/minio/backup/restore", {"backup_name": bad}),
                         ("/api/admin/minio/backup/verify", {"backup_name": bad}),
                         ("/api/admin/minio/backup/create", {"backup_name": bad,
                                                            "bucket": "diagrams"})):
        answer = client.post(path, params=params, headers=admin)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["detail"]
    assert client.delete("/api/admin/minio/backup/" + quote(bad, safe=""),
                         headers=admin).status_code in (400, 404)


@pytest.mark.parametrize("bad", BAD_BUCKETS)
def test_bad_bucket_names_are_400(client: TestClient, admin: dict[str, str], bad: str) -> None:
    created = client.post("/api/admin/minio/backup/create", params={"bucket": bad},
                          headers=admin)
    assert created.status_code == 400, created.text
    restored = client.post("/api/admin/minio/backup/restore",
                           params={"backup_name": "anything", "target_bucket": bad},
                           headers=admin)
    assert restored.status_code == 400, restored.text


def test_a_backup_bucket_as_target_is_400_and_unknown_backups_are_404(
        client: TestClient, admin: dict[str, str], buckets: Buckets) -> None:
    for target in (buckets.settings.backup_bucket_objects,
                   buckets.settings.backup_bucket_database):
        answer = client.post("/api/admin/minio/backup/restore",
                             params={"backup_name": "anything", "target_bucket": target},
                             headers=admin)
        assert answer.status_code == 400 and "holds backups" in answer.json()["detail"]
    for answer in (client.post("/api/admin/minio/backup/restore?backup_name=nope",
                               headers=admin),
                   client.post("/api/admin/minio/backup/verify?backup_name=nope", headers=admin),
                   client.delete("/api/admin/minio/backup/nope", headers=admin),
                   client.post(f"/api/admin/minio/backup/create?bucket={buckets.name('none')}",
                               headers=admin)):
        assert answer.status_code == 404, answer.text


def test_no_token_is_401_and_a_non_admin_is_403(client: TestClient, infra_stack: Stack) -> None:
    paths = [("get", "/api/admin/minio/buckets"), ("get", "/api/admin/minio/backup/list"),
             ("post", "/api/admin/minio/backup/create?bucket=diagrams"),
             ("post", "/api/admin/minio/backup/restore?backup_name=x"),
             ("post", "/api/admin/minio/backup/verify?backup_name=x"),
             ("delete", "/api/admin/minio/backup/x")]
    user = _session(infra_stack, "user")
    for method, path in paths:
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path, headers=user).status_code == 403, path
    boss = _session(infra_stack, "admin")
    assert client.get("/api/admin/minio/backup/list", headers=boss).status_code == 200


def test_listing_and_restoring_work_with_the_key_while_postgres_and_redis_are_down(
        buckets: Buckets, admin: dict[str, str], infra_stack: Stack) -> None:
    source = buckets.make("outage-src", {"k": b"v"})
    MinIOBucketBackupManager(buckets.settings, infra_stack.creds).create(source, "pre_outage")
    outage = buckets.settings.model_copy(update={"pg_port": free_port_block(),
                                                 "redis_port": free_port_block()})
    with TestClient(create_app("admin-outage", outage, [router], {})) as down:
        listed = down.get("/api/admin/minio/backup/list", headers=admin)
        assert listed.status_code == 200
        assert "pre_outage" in [b["name"] for b in listed.json()["backups"]]
        restored = down.post("/api/admin/minio/backup/restore?backup_name=pre_outage&"
                             f"target_bucket={buckets.name('outage-dst')}", headers=admin)
        assert restored.status_code == 200, restored.text
        assert restored.json()["restored"] == 1, restored.text


def _cli(buckets: Buckets, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(buckets.settings)}
    return subprocess.run([sys.executable, "-m", "autograph.cli.main", "backup", "objects",
                           *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_create_list_verify_restore_delete(buckets: Buckets) -> None:
    source = buckets.make("cli-src", {"one": b"1", "two/2": b"22"})
    created = _cli(buckets, "create", source, "--name", "cli_one", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["object_count"] == 2
    listed = json.loads(_cli(buckets, "list", "--json").stdout)
    assert "cli_one" in [b["name"] for b in listed["backups"]]
    usage = json.loads(_cli(buckets, "buckets", "--json").stdout)
    assert {"name": source, "object_count": 2, "size_bytes": 3} .items() <= next(
        b for b in usage["buckets"] if b["name"] == source).items()
    verified = _cli(buckets, "verify", "cli_one")
    assert verified.returncode == 0 and "verification passed" in verified.stdout
    restored = _cli(buckets, "restore", "cli_one", "--target-bucket", buckets.name("cli-dst"),
                    "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored"] == 2
    assert _cli(buckets, "delete", "cli_one", "--yes").returncode == 0


def test_cli_errors_are_one_line_with_exit_codes(buckets: Buckets) -> None:
    bad = _cli(buckets, "restore", "../../etc/passwd")
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid backup name")
    missing = _cli(buckets, "verify", "nope")
    assert missing.returncode == 3 and "no bucket backup named nope" in missing.stderr
    target = _cli(buckets, "restore", "x", "--target-bucket",
                  buckets.settings.backup_bucket_objects)
    assert target.returncode == 2 and "holds backups" in target.stderr


def test_snapshot_routes_create_list_restore_and_refuse_bad_input(
        client: TestClient, admin: dict[str, str], buckets: Buckets) -> None:
    from autograph.dr.ops import locks
    bucket = buckets.settings.app_buckets[0]
    buckets.make(bucket.split("-")[1], {"a.json": b'{"a": 1}', "b/c.bin": b"\x00\x01"})
    created = client.post(f"/api/admin/minio/snapshots/create?bucket={bucket}", headers=admin)
    assert created.status_code == 201, created.text
    name = created.json()["snapshots"][0]["name"]
    listed = client.get(f"/api/admin/minio/snapshots?bucket={bucket}", headers=admin).json()
    assert [r["name"] for r in listed["snapshots"]] == [name]
    assert client.post(f"/api/admin/minio/snapshots/verify?snapshot_name={name}",
                       headers=admin).json()["status"] == "passed"
    for key in buckets.etags(bucket):
        buckets.client.delete_object(Bucket=bucket, Key=key)
    started = client.post(f"/api/admin/minio/snapshots/restore?bucket={bucket}&wait=false",
                          headers=admin)
    assert started.status_code == 202
    job = _job(client, admin, started.json()["job_id"])
    assert job["status"] == "succeeded" and job["result"]["restored"] == 2
    assert sorted(buckets.etags(bucket)) == ["a.json", "b/c.bin"]

    for path in ("/api/admin/minio/snapshots/restore?snapshot_name=../../etc/passwd",
                 f"/api/admin/minio/snapshots/create?bucket={BAD_BUCKETS[1]}",
                 f"/api/admin/minio/snapshots/restore?snapshot_name={name}&bucket={bucket}",
                 f"/api/admin/minio/snapshots/restore?snapshot_name={name}&target_bucket=A_B"):
        answer = client.post(path, headers=admin)
        assert answer.status_code == 400 and answer.json()["detail"], path
    missing = f"snap_{bucket}_20200101T000000000Z"
    assert client.post(f"/api/admin/minio/snapshots/restore?snapshot_name={missing}",
                       headers=admin).status_code == 404
    assert client.get("/api/admin/minio/snapshots").status_code == 401
    with locks.acquire(buckets.settings.backups_dir, "snapshot", "snapshot", bucket):
        busy = client.post(f"/api/admin/minio/snapshots/create?bucket={bucket}", headers=admin)
    assert busy.status_code == 409 and "already running" in busy.json()["detail"]
