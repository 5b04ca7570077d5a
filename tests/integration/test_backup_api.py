"""The admin API for database backups (TestClient on the real router) and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from autograph.config import Settings
from autograph.dr.api.routes import admin_router as router
from autograph.dr.postgres import DatabaseBackupManager
from autograph.services.common.app import create_app
from autograph.services.common.security import Principal, create_session
from autograph.stack.lifecycle import Stack
from dbbackups import isolated_settings
from stackutil import free_port_block, settings_env

BAD_NAMES = ["../../etc/passwd", "", "a" * 200, "bäckup", "a/b"]


@pytest.fixture(scope="module")
def settings(infra_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One isolated database, folder and bucket for the module (tests use distinct names)."""
    with isolated_settings(infra_stack, tmp_path_factory.mktemp("api")) as isolated:
        yield isolated


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app("admin-test", settings, [router], {})) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(infra_stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {infra_stack.creds.admin_api_key}"}


def _session_token(infra_stack: Stack, role: str) -> str:
    async def make() -> str:
        redis = aioredis.Redis(host=infra_stack.settings.host,
                               port=infra_stack.settings.redis_port,
                               password=infra_stack.creds.redis_password)
        try:
            principal = Principal(user_id=42, email=f"{role}@example.com", role=role)  # type: ignore[arg-type]
            return await create_session(redis, principal, 300)
        finally:
            await redis.aclose()

    return asyncio.run(make())


def _wait_for_job(client: TestClient, admin: dict[str, str], job_id: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/admin/jobs/{job_id}", headers=admin).json()
        if job["status"] != "running":
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_create_list_verify_restore_delete_through_the_api(
        client: TestClient, admin: dict[str, str]) -> None:
    created = client.post("/api/admin/backup/create?backup_name=api_one", headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert {"name", "kind", "source", "created_at", "size_bytes", "sha256", "locations",
            "verification", "tags"} <= set(body)
    assert body["created_at"].endswith("Z")
    assert body["locations"] == ["local", "s3"] and body["kind"] == "database"

    listed = client.get("/api/admin/backup/list", headers=admin).json()
    assert "api_one" in [b["name"] for b in listed["backups"]]

    verified = client.post("/api/admin/backup/verify?backup_name=api_one", headers=admin)
    assert verified.status_code == 200
    assert verified.json()["verification"]["status"] == "passed"

    restored = client.post("/api/admin/backup/restore?backup_name=api_one", headers=admin)
    assert restored.status_code == 200
    assert restored.json()["status"] == "completed"
    assert restored.json()["backup_name"] == "api_one"
    assert restored.json()["duration_seconds"] > 0

    deleted = client.delete("/api/admin/backup/api_one", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["locations"] == ["local", "s3"]
    listed = client.get("/api/admin/backup/list", headers=admin).json()
    assert "api_one" not in [b["name"] for b in listed["backups"]]


def test_wait_false_answers_202_and_the_job_reports_the_result(
        client: TestClient, admin: dict[str, str]) -> None:
    started = client.post("/api/admin/backup/create?backup_name=bg&wait=false", headers=admin)
    assert started.status_code == 202
    job = _wait_for_job(client, admin, started.json()["job_id"])
    assert job["status"] == "succeeded"
    assert job["kind"] == "backup.create"
    assert job["result"]["name"] == "bg"
    restore = client.post("/api/admin/backup/restore?backup_name=bg&wait=false", headers=admin)
    assert restore.status_code == 202
    done = _wait_for_job(client, admin, restore.json()["job_id"])
    assert done["status"] == "succeeded", done.get("error")
    assert done["result"]["status"] == "completed"


def test_a_second_operation_gets_409(client: TestClient, admin: dict[str, str],
                                     settings: Settings, infra_stack: Stack) -> None:
    manager = DatabaseBackupManager(settings, infra_stack.creds)
    with manager.acquire("backup", "long one"):
        answer = client.post("/api/admin/backup/create", headers=admin)
        assert answer.status_code == 409
        assert "already running" in answer.json()["detail"]
        background = client.post("/api/admin/backup/create?wait=false", headers=admin)
        assert background.status_code == 409


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_backup_names_are_rejected_with_400(client: TestClient, admin: dict[str, str],
                                                bad: str) -> None:
    for path in ("/api/admin/backup/restore", "/api/admin/backup/verify",
                 "/api/admin/backup/create"):
        if path.endswith("create") and bad == "":
            continue  # an empty name on create means "choose one"
        answer = client.post(path, params={"backup_name": bad}, headers=admin)
        assert answer.status_code == 400, (path, answer.text)
        assert "detail" in answer.json()
    answer = client.delete("/api/admin/backup/" + quote(bad, safe=""), headers=admin)
    assert answer.status_code == 400, answer.text


def test_unknown_backup_is_404_and_unknown_job_is_404(client: TestClient,
                                                      admin: dict[str, str]) -> None:
    for answer in (client.post("/api/admin/backup/restore?backup_name=nope", headers=admin),
                   client.post("/api/admin/backup/verify?backup_name=nope", headers=admin),
                   client.delete("/api/admin/backup/nope", headers=admin),
                   client.get("/api/admin/jobs/" + "0" * 32, headers=admin)):
        assert answer.status_code == 404
        assert answer.json()["detail"]


def test_no_token_is_401_and_a_non_admin_is_403(client: TestClient, infra_stack: Stack) -> None:
    assert client.get("/api/admin/backup/list").status_code == 401
    assert client.post("/api/admin/backup/restore?backup_name=x").status_code == 401
    wrong = {"Authorization": "Bearer not-a-token"}
    assert client.get("/api/admin/backup/list", headers=wrong).status_code == 401
    user = {"Authorization": f"Bearer {_session_token(infra_stack, 'user')}"}
    assert client.get("/api/admin/backup/list", headers=user).status_code == 403
    assert client.delete("/api/admin/backup/x", headers=user).status_code == 403
    boss = {"Authorization": f"Bearer {_session_token(infra_stack, 'admin')}"}
    assert client.get("/api/admin/backup/list", headers=boss).status_code == 200


def test_the_api_lists_with_the_key_while_postgres_and_redis_are_down(
        settings: Settings, admin: dict[str, str], infra_stack: Stack) -> None:
    DatabaseBackupManager(settings, infra_stack.creds).create("before_outage")
    outage = settings.model_copy(update={"pg_port": free_port_block(),
                                         "redis_port": free_port_block()})
    with TestClient(create_app("admin-outage", outage, [router], {})) as client:
        listed = client.get("/api/admin/backup/list", headers=admin)
        assert listed.status_code == 200
        assert "before_outage" in [b["name"] for b in listed.json()["backups"]]
        create = client.post("/api/admin/backup/create", headers=admin)
        assert create.status_code == 503
        assert "PostgreSQL" in create.json()["detail"]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run([sys.executable, "-m", "autograph.cli.main", "backup", "db", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_create_list_json_verify_and_restore(settings: Settings) -> None:
    created = _cli(settings, "create", "--name", "cli_one", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "cli_one"
    listed = json.loads(_cli(settings, "list", "--json").stdout)
    assert listed["backups"][0]["name"] == "cli_one"
    verified = _cli(settings, "verify", "cli_one", "--deep")
    assert verified.returncode == 0 and "verification passed" in verified.stdout
    restored = _cli(settings, "restore", "cli_one", "--yes", "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["status"] == "completed"


def test_cli_reports_a_conflict_and_bad_names_clearly(settings: Settings,
                                                      infra_stack: Stack) -> None:
    manager = DatabaseBackupManager(settings, infra_stack.creds)
    with manager.acquire("restore", "something"):
        busy = _cli(settings, "create")
    assert busy.returncode == 4
    assert busy.stderr.strip().startswith("error: a database restore of something is already")
    bad = _cli(settings, "restore", "../../etc/passwd", "--yes")
    assert bad.returncode == 2 and "invalid backup name" in bad.stderr
    missing = _cli(settings, "verify", "nope")
    assert missing.returncode == 3 and "no database backup named nope" in missing.stderr
