"""Faults on the real stack: PostgreSQL, Redis or S3 stopped under the running services.

Health turns 503 and back to 200 without restarting any service; failed writes leave
neither a row pointing to a missing object nor an object without its row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack

SERVICES = ("gateway", "auth", "diagram")
PASSWORD = "Sturdy-Pass-42"


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


@pytest.fixture
def user(gateway: httpx.Client) -> dict[str, str]:
    """A fresh session per test (a Redis restart ends every session)."""
    email = f"faults-{uuid.uuid4().hex[:10]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    token = gateway.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _health(stack: Stack, service: str) -> httpx.Response:
    return httpx.get(f"{stack.settings.service_url(service)}/health", timeout=30,
                     trust_env=False)


def _wait_until_healthy(stack: Stack, deadline_seconds: float = 90.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if all(_health(stack, s).status_code == 200 for s in SERVICES):
            return
        time.sleep(0.5)
    raise AssertionError("services did not become healthy again")


def _pids(stack: Stack) -> dict[str, int | None]:
    return {row.name: row.pid for row in stack.ps() if row.name in SERVICES}


def _object_keys(stack: Stack, bucket: str) -> set[str]:
    client = app_client(stack.settings, stack.creds)
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _sql(stack: Stack, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    settings = stack.settings
    with psycopg.connect(host=settings.host, port=settings.pg_port, user=settings.pg_user,
                         password=stack.creds.pg_password, dbname=settings.pg_database) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def test_postgres_down_makes_health_503_and_up_again_heals_without_restart(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    pids = _pids(app_stack)
    objects_before = _object_keys(app_stack, "diagrams")
    app_stack.stop("postgres")
    try:
        for service in SERVICES:
            answer = _health(app_stack, service)
            assert answer.status_code == 503
            assert answer.json()["status"] == "unhealthy"
            assert answer.json()["checks"]["postgres"] != "ok"
            assert answer.json()["checks"]["redis"] == "ok"
        failed = gateway.post("/api/diagrams", json={"name": "during outage"}, headers=user)
        assert failed.status_code == 503
        assert failed.json()["detail"] == "PostgreSQL is unavailable"
        assert _object_keys(app_stack, "diagrams") == objects_before  # no orphan object
    finally:
        app_stack.start("postgres")
    _wait_until_healthy(app_stack)
    assert _pids(app_stack) == pids
    created = gateway.post("/api/diagrams", json={"name": "after outage"}, headers=user)
    assert created.status_code == 201
    assert gateway.get("/api/users/me", headers=user).status_code == 200


def test_redis_down_makes_health_503_and_the_api_key_still_works(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    pids = _pids(app_stack)
    key = {"Authorization": f"Bearer {app_stack.creds.admin_api_key}"}
    app_stack.stop("redis")
    try:
        for service in SERVICES:
            answer = _health(app_stack, service)
            assert answer.status_code == 503
            assert answer.json()["checks"]["redis"] != "ok"
        session = gateway.get("/api/users/me", headers=user)
        assert session.status_code == 503
        assert "Redis" in session.json()["detail"]
        assert gateway.get("/api/users", headers=key).status_code == 200
    finally:
        app_stack.start("redis")
    _wait_until_healthy(app_stack)
    assert _pids(app_stack) == pids
    email = f"after-redis-{uuid.uuid4().hex[:8]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    token = gateway.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200
    me = gateway.get("/api/users/me",
                     headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["email"] == email


def test_s3_down_leaves_no_row_and_deletions_finish_when_it_returns(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    kept = gateway.post("/api/diagrams", json={"name": "kept", "canvas": {"k": 1}},
                        headers=user).json()
    doomed = gateway.post("/api/diagrams", json={"name": "doomed", "canvas": {"d": 1}},
                          headers=user).json()
    rows_before = _sql(app_stack, "SELECT count(*) FROM diagrams")[0][0]
    app_stack.stop("s3")
    try:
        assert _health(app_stack, "diagram").status_code == 503
        failed = gateway.post("/api/diagrams", json={"name": "no storage"}, headers=user)
        assert failed.status_code == 503
        assert "S3" in failed.json()["detail"]
        assert _sql(app_stack, "SELECT count(*) FROM diagrams")[0][0] == rows_before
        # Rows go first on delete; the object is queued and survives the outage.
        assert gateway.delete(f"/api/diagrams/{doomed['id']}", headers=user).status_code == 204
        queued = _sql(app_stack, "SELECT object_key FROM object_deletions")
        assert any(str(key).startswith(doomed["id"]) for (key,) in queued)
    finally:
        app_stack.start("s3")
    _wait_until_healthy(app_stack)
    assert any(k.startswith(doomed["id"]) for k in _object_keys(app_stack, "diagrams"))
    # The next delete purges the queue left by the outage.
    other = gateway.post("/api/diagrams", json={"name": "other"}, headers=user).json()
    assert gateway.delete(f"/api/diagrams/{other['id']}", headers=user).status_code == 204
    keys = _object_keys(app_stack, "diagrams")
    assert not any(k.startswith((doomed["id"], other["id"])) for k in keys)
    due = "SELECT count(*) FROM object_deletions WHERE not_before <= now()"
    assert _sql(app_stack, due)[0][0] == 0
    assert gateway.get(f"/api/diagrams/{kept['id']}", headers=user).json()["canvas"] == {"k": 1}


def test_an_orphan_left_by_a_crash_is_purged_but_referenced_objects_are_kept(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    kept = gateway.post("/api/diagrams", json={"name": "kept", "canvas": {"v": 1}},
                        headers=user).json()
    kept_key = str(_sql(app_stack, "SELECT object_key FROM diagram_versions "
                                   "WHERE diagram_id = %s", (kept["id"],))[0][0])
    # A process that died between writing an object and committing its row leaves the object
    # and its reservation; here both are made by hand, the reservation already due.
    orphan = f"{uuid.uuid4()}/{uuid.uuid4().hex}.json"
    app_client(app_stack.settings, app_stack.creds).put_object(Bucket="diagrams", Key=orphan,
                                                               Body=b"{}")
    _sql(app_stack, "INSERT INTO object_deletions (bucket, object_key, not_before) "
                    "SELECT 'diagrams', k, now() - interval '1 minute' "
                    "FROM unnest(%s::text[]) AS k", ([orphan, kept_key],))
    other = gateway.post("/api/diagrams", json={"name": "trigger"}, headers=user).json()
    assert gateway.delete(f"/api/diagrams/{other['id']}", headers=user).status_code == 204
    keys = _object_keys(app_stack, "diagrams")
    assert orphan not in keys
    assert kept_key in keys
    assert gateway.get(f"/api/diagrams/{kept['id']}", headers=user).json()["canvas"] == {"v": 1}


def test_every_row_points_to_an_existing_object(app_stack: Stack) -> None:
    keys = _object_keys(app_stack, "diagrams")
    referenced = {str(key) for (key,) in _sql(app_stack,
                                              "SELECT object_key FROM diagram_versions")}
    assert referenced <= keys
    uploads = {str(key) for (key,) in _sql(app_stack, "SELECT object_key FROM uploads")}
    assert uploads <= _object_keys(app_stack, "uploads")
