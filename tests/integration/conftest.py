"""Fixtures shared by the integration tests: the gateway of the session's app stack, a
registered user's headers and the admin key's headers (the probing tests: test_no_5xx,
test_holes), and an empty scratch database on that stack's server (the migration tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from autograph.stack.lifecycle import Stack

PASSWORD = "Sturdy-Pass-42"


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=30,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def user(gateway: httpx.Client) -> dict[str, str]:
    email = f"probe-{uuid.uuid4().hex[:10]}@example.com"
    assert gateway.post("/api/auth/register",
                        json={"email": email, "password": PASSWORD}).status_code == 201
    token = gateway.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="module")
def admin(app_stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {app_stack.creds.admin_api_key}"}


@pytest.fixture
def scratch_database(app_stack: Stack) -> Iterator[dict[str, Any]]:
    """An empty database on the app stack's server, dropped afterwards: psycopg keywords."""
    settings = app_stack.settings
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    server = {"host": settings.host, "port": settings.pg_port, "user": settings.pg_user,
              "password": app_stack.creds.pg_password}
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**server, "dbname": name}
    finally:
        with psycopg.connect(**server, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
