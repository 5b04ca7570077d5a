"""Login throttling: backoff per (account, client), per client and per account, never a
lockout that anyone can impose on someone else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from autograph.stack.lifecycle import Stack

PASSWORD = "Sturdy-Pass-42"


@pytest.fixture(scope="module")
def auth(app_stack: Stack) -> Iterator[httpx.Client]:
    """The auth service itself: a loopback peer, so X-Forwarded-For names the client (as
    the gateway and the frontend append it)."""
    with httpx.Client(base_url=app_stack.settings.service_url("auth"), timeout=30,
                      trust_env=False) as client:
        yield client


def _account(auth: httpx.Client) -> str:
    email = f"throttle-{uuid.uuid4().hex[:10]}@example.com"
    assert auth.post("/api/auth/register",
                     json={"email": email, "password": PASSWORD}).status_code == 201
    return email


def _login(auth: httpx.Client, email: str, password: str, client: str) -> httpx.Response:
    return auth.post("/api/auth/login", json={"email": email, "password": password},
                     headers={"X-Forwarded-For": client})


def test_one_client_guessing_one_account_waits_but_others_log_in(auth: httpx.Client) -> None:
    email = _account(auth)
    for _ in range(5):
        assert _login(auth, email, "wrong", "198.51.100.1").status_code == 401
    refused = _login(auth, email, PASSWORD, "198.51.100.1")
    wait = int(refused.headers["retry-after"])
    assert refused.status_code == 429 and 1 <= wait <= 2  # the first step: two seconds
    assert _login(auth, email, PASSWORD, "198.51.100.2").status_code == 200
    time.sleep(wait + 0.1)
    assert _login(auth, email, PASSWORD, "198.51.100.1").status_code == 200


def test_one_client_trying_many_accounts_waits(auth: httpx.Client) -> None:
    client = "198.51.100.20"
    email = _account(auth)
    for n in range(20):
        assert _login(auth, f"nobody-{n}-{uuid.uuid4().hex[:6]}@example.com", "wrong",
                      client).status_code == 401
    assert _login(auth, email, PASSWORD, client).status_code == 429
    assert _login(auth, email, PASSWORD, "198.51.100.21").status_code == 200


def test_many_clients_against_one_account_cannot_lock_it_out(auth: httpx.Client) -> None:
    email = _account(auth)
    for n in range(10):
        assert _login(auth, email, "wrong", f"203.0.113.{n + 1}").status_code == 401
    refused = _login(auth, email, PASSWORD, "203.0.113.200")
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 30  # a short wait, never the old 15-minute lockout
    time.sleep(wait + 0.1)
    assert _login(auth, email, PASSWORD, "203.0.113.200").status_code == 200


def test_hammering_while_refused_does_not_extend_the_wait(auth: httpx.Client) -> None:
    email = _account(auth)
    for _ in range(5):
        _login(auth, email, "wrong", "198.51.100.40")
    for _ in range(10):
        assert _login(auth, email, "wrong", "198.51.100.40").status_code == 429
    time.sleep(2.1)
    assert _login(auth, email, PASSWORD, "198.51.100.40").status_code == 200
