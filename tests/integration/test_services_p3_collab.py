"""The collaboration service on the real stack: two editors in one room, on one replica and
across two replicas (fan-out through Redis pub/sub), presence, and refused joins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from autograph.stack.lifecycle import Stack
from stackutil import free_port_block, settings_env


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


def _login(gateway: httpx.Client) -> str:
    email = f"p3-collab-{uuid.uuid4().hex[:10]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"})
    return str(token.json()["access_token"])


@pytest.fixture(scope="module")
def token(gateway: httpx.Client) -> str:
    return _login(gateway)


@pytest.fixture()
def diagram_id(gateway: httpx.Client, token: str) -> str:
    created = gateway.post("/api/diagrams", json={"name": "Shared"},
                           headers={"Authorization": f"Bearer {token}"})
    return str(created.json()["id"])


@pytest.fixture(scope="module")
def second_replica(app_stack: Stack) -> Iterator[str]:
    """A second collaboration process on its own port, same Redis and PostgreSQL."""
    port = free_port_block()
    env = {**os.environ, **settings_env(app_stack.settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "autograph.services.collaboration.app:create_app",
         "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("second collaboration replica did not become healthy")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _ws(base: str, diagram_id: str, token: str | None = None) -> ClientConnection:
    url = base.replace("http://", "ws://") + f"/api/collab/ws/{diagram_id}"
    return connect(url + (f"?token={token}" if token else ""), open_timeout=10)


def _next(conn: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next frame matching ``wanted`` (others are skipped); fails after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        frame = json.loads(conn.recv(timeout=max(0.1, deadline - time.monotonic())))
        if wanted(frame):
            return frame


def _editing_session(first: ClientConnection, join: Callable[[], ClientConnection],
                     auth_frame_token: str | None = None) -> None:
    """``first`` is in the room; ``join`` opens the second editor's connection (which
    authenticates with a first frame when ``auth_frame_token`` is given)."""
    welcome_a = _next(first, lambda f: f["type"] == "welcome")
    with join() as second:
        if auth_frame_token:
            second.send(json.dumps({"type": "auth", "token": auth_frame_token}))
        _two_editors(first, second, welcome_a)


def _two_editors(first: ClientConnection, second: ClientConnection,
                 welcome_a: dict[str, Any]) -> None:
    welcome_b = _next(second, lambda f: f["type"] == "welcome")
    assert [m["client_id"] for m in welcome_b["members"]] == [
        welcome_a["client_id"], welcome_b["client_id"]]
    joined = _next(first, lambda f: f["type"] == "presence")
    assert (joined["event"], joined["client_id"]) == ("join", welcome_b["client_id"])
    assert len(joined["members"]) == 2

    first.send(json.dumps({"type": "op", "data": {"move": "n1", "x": 10}, "ref": "r-1"}))
    ack = _next(first, lambda f: f["type"] == "ack")
    op = _next(second, lambda f: f["type"] == "op")
    assert ack["ref"] == "r-1" and op["seq"] == ack["seq"]
    assert (op["from"], op["data"]) == (welcome_a["client_id"], {"move": "n1", "x": 10})

    second.send(json.dumps({"type": "cursor", "data": {"x": 1, "y": 2}}))
    cursor = _next(first, lambda f: f["type"] == "cursor")
    assert (cursor["from"], cursor["data"]) == (welcome_b["client_id"], {"x": 1, "y": 2})

    second.close()
    left = _next(first, lambda f: f["type"] == "presence" and f["event"] == "leave")
    assert left["client_id"] == welcome_b["client_id"]
    assert [m["client_id"] for m in left["members"]] == [welcome_a["client_id"]]


def test_two_editors_in_one_room_on_one_replica(app_stack: Stack, token: str,
                                                diagram_id: str) -> None:
    base = app_stack.settings.service_url("collaboration")
    with _ws(base, diagram_id, token) as first:
        _editing_session(first, lambda: _ws(base, diagram_id), auth_frame_token=token)


def test_two_replicas_share_a_room_through_redis(app_stack: Stack, second_replica: str,
                                                 token: str, diagram_id: str) -> None:
    base = app_stack.settings.service_url("collaboration")
    with _ws(base, diagram_id, token) as first:
        _editing_session(first, lambda: _ws(second_replica, diagram_id, token))


def test_members_endpoint_sees_editors_of_every_replica(
        app_stack: Stack, second_replica: str, gateway: httpx.Client, token: str,
        diagram_id: str) -> None:
    base = app_stack.settings.service_url("collaboration")
    with _ws(base, diagram_id, token) as first, _ws(second_replica, diagram_id,
                                                     token) as second:
        ids = {_next(c, lambda f: f["type"] == "welcome")["client_id"] for c in (first, second)}
        answer = gateway.get(f"/api/collab/rooms/{diagram_id}/members",
                             headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert {m["client_id"] for m in answer.json()["members"]} == ids


def test_sequence_numbers_increase_per_room(app_stack: Stack, token: str,
                                            diagram_id: str) -> None:
    base = app_stack.settings.service_url("collaboration")
    with _ws(base, diagram_id, token) as conn:
        seqs = []
        for n in range(3):
            conn.send(json.dumps({"type": "op", "data": {"n": n}}))
            seqs.append(_next(conn, lambda f: f["type"] == "ack")["seq"])
        assert seqs == sorted(seqs) and len(set(seqs)) == 3


def _close_code(conn: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            conn.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.parametrize(("who", "code"), [("nobody", 4401), ("stranger", 4404)])
def test_joins_are_refused_without_a_valid_session_or_for_a_foreign_diagram(
        app_stack: Stack, gateway: httpx.Client, diagram_id: str, who: str,
        code: int) -> None:
    token = "not-a-session" if who == "nobody" else _login(gateway)
    with _ws(app_stack.settings.service_url("collaboration"), diagram_id, token) as conn:
        assert _close_code(conn) == code


def test_malformed_frames_get_an_error_and_the_room_goes_on(app_stack: Stack, token: str,
                                                           diagram_id: str) -> None:
    with _ws(app_stack.settings.service_url("collaboration"), diagram_id, token) as conn:
        conn.send(json.dumps({"type": "op", "data": "not an object"}))
        assert _next(conn, lambda f: f["type"] == "error")["detail"]
        conn.send(json.dumps({"type": "ping"}))
        assert _next(conn, lambda f: f["type"] != "welcome")["type"] == "pong"
        conn.send("not json")
        assert _close_code(conn) == 4400


def test_the_gateway_relays_rooms_and_close_codes(app_stack: Stack, token: str,
                                                  diagram_id: str) -> None:
    gateway = app_stack.settings.service_url("gateway")
    direct = app_stack.settings.service_url("collaboration")
    with _ws(gateway, diagram_id, token) as first:
        _editing_session(first, lambda: _ws(direct, diagram_id, token))
    with _ws(gateway, diagram_id, "not-a-session") as refused:
        assert _close_code(refused) == 4401
