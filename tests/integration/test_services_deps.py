"""The shared service pieces against real (or really unreachable) servers: the admin
dependency with PostgreSQL and Redis down, the JSON error edge, concurrent migrations (the
runner itself: autograph.schema; its CLI, the restore paths and the services' check are in
test_migrations.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from autograph.config import load_settings
from autograph.errors import Conflict, OperationFailed
from autograph.schema.runner import MigrationRun, migrate
from autograph.schema.versions import MIGRATIONS, Migration
from autograph.services.common.app import create_app
from autograph.services.common.checks import standard_checks
from autograph.services.common.deps import AdminDep, CurrentUser
from autograph.services.common.resources import Resources
from stackutil import free_port_block

API_KEY = "break-glass-key-for-tests-0123456789"

router = APIRouter()


@router.get("/api/admin/probe")
async def admin_probe(admin: AdminDep) -> dict[str, str]:
    return {"via": admin.via}


@router.get("/api/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"email": user.email}


@router.get("/conflict")
async def conflict() -> None:
    raise Conflict("already running")


@router.get("/crash")
async def crash() -> None:
    raise RuntimeError("secret internal detail")


@pytest.fixture(scope="module")
def client_with_dead_dependencies(tmp_path_factory: pytest.TempPathFactory
                                  ) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("deps-home")
    # Free ports: nothing listens there, so PostgreSQL, Redis and S3 are "down".
    settings = load_settings(home=home, pg_port=free_port_block(), redis_port=free_port_block(),
                             s3_port=free_port_block(), admin_api_key=API_KEY)
    resources = Resources(settings)
    app = create_app("deps test", settings, [router], standard_checks(resources),
                     resources=resources)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_api_key_works_with_postgres_and_redis_down(
        client_with_dead_dependencies: TestClient) -> None:
    answer = client_with_dead_dependencies.get("/api/admin/probe", headers=_bearer(API_KEY))
    assert answer.status_code == 200
    assert answer.json() == {"via": "api_key"}


def test_admin_route_without_token_is_401(client_with_dead_dependencies: TestClient) -> None:
    answer = client_with_dead_dependencies.get("/api/admin/probe")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_session_token_with_redis_down_is_503_naming_redis(
        client_with_dead_dependencies: TestClient) -> None:
    answer = client_with_dead_dependencies.get("/api/admin/probe",
                                               headers=_bearer(API_KEY[:-1] + "x"))
    assert answer.status_code == 503
    assert "Redis" in answer.json()["detail"]


def test_api_key_is_not_accepted_as_a_user(client_with_dead_dependencies: TestClient) -> None:
    assert client_with_dead_dependencies.get("/api/me", headers=_bearer(API_KEY)
                                             ).status_code == 401


def test_health_names_every_failing_dependency(
        client_with_dead_dependencies: TestClient) -> None:
    answer = client_with_dead_dependencies.get("/health")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unhealthy"
    assert set(body["checks"]) == {"postgres", "redis", "s3"}
    assert all(detail != "ok" for detail in body["checks"].values())


def test_autograph_errors_keep_their_status(client_with_dead_dependencies: TestClient) -> None:
    answer = client_with_dead_dependencies.get("/conflict")
    assert (answer.status_code, answer.json()) == (409, {"detail": "already running"})


def test_unexpected_errors_are_500_json_without_internals(
        client_with_dead_dependencies: TestClient) -> None:
    answer = client_with_dead_dependencies.get("/crash")
    assert answer.status_code == 500
    assert answer.json()["detail"].startswith("internal error (request id ")
    assert "secret internal detail" not in answer.text
    assert answer.json()["detail"].endswith(f"{answer.headers['x-request-id']})")


def test_concurrent_migrations_apply_each_version_once(scratch_database: dict[str, Any]
                                                       ) -> None:
    runs: list[MigrationRun] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        runs.append(migrate(scratch_database))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 4
    applied = sorted(v for one in runs for v in one.applied_now)
    assert applied == sorted(m.version for m in MIGRATIONS)  # each version once, in all
    assert all(not one.status.behind for one in runs)
    with psycopg.connect(**scratch_database) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [row[0] for row in rows] == applied
    assert migrate(scratch_database).applied_now == []


def test_migrations_apply_in_version_order(scratch_database: dict[str, Any]) -> None:
    migrate(scratch_database)
    with psycopg.connect(**scratch_database) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations "
                            "ORDER BY applied_at, version").fetchall()
    assert [row[0] for row in rows] == sorted(m.version for m in MIGRATIONS)


def test_an_edited_migration_is_refused(scratch_database: dict[str, Any]) -> None:
    migrate(scratch_database)
    with psycopg.connect(**scratch_database) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = repeat('0', 64) "
                     "WHERE version = 1")
    with pytest.raises(OperationFailed, match="differs from the one applied"):
        migrate(scratch_database)


def test_a_failing_migration_is_rolled_back_and_named(scratch_database: dict[str, Any]) -> None:
    broken = Migration(9999, "broken on purpose", "CREATE TABLE half_done (id int);\n"
                                                  "SELECT 1 / 0;")
    with pytest.raises(OperationFailed, match=r"9999 \(broken on purpose\) failed: division"):
        migrate(scratch_database, (*MIGRATIONS, broken))
    with psycopg.connect(**scratch_database) as conn:
        versions = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        table = conn.execute("SELECT to_regclass('half_done')").fetchone()
    assert versions == {m.version for m in MIGRATIONS}  # those before it stay applied
    assert table == (None,)
