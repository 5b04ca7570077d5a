"""Bad input through the gateway: always a 4xx JSON answer with a detail, never a 500; SQL
metacharacters and unicode are stored and returned verbatim."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from autograph.stack.lifecycle import Stack

PASSWORD = "Sturdy-Pass-42"


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def user(gateway: httpx.Client) -> dict[str, str]:
    email = f"input-{uuid.uuid4().hex[:10]}@example.com"
    assert gateway.post("/api/auth/register",
                        json={"email": email, "password": PASSWORD}).status_code == 201
    token = gateway.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="module")
def diagram_id(gateway: httpx.Client, user: dict[str, str]) -> str:
    return str(gateway.post("/api/diagrams", json={"name": "target"}, headers=user).json()["id"])


def _assert_json_error(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert isinstance(answer.json()["detail"], str)
    assert "Traceback" not in answer.text


JSON = {"content-type": "application/json"}
DEEP = '{"name": "x", "canvas": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
TOO_DEEP = '{"name": "x", "canvas": {"a": ' + "[" * 70 + "]" * 70 + "}}"

# (case id, method, path, request kwargs, expected status); "{id}" is an existing diagram.
BAD_AUTHENTICATED: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("malformed json", "POST", "/api/diagrams", {"content": b'{"name": '}, 400),
    ("invalid utf-8", "POST", "/api/diagrams", {"content": b'{"name": "\xff\xfe"}'}, 400),
    ("nesting beyond the parser", "POST", "/api/diagrams", {"content": DEEP.encode()}, 400),
    ("canvas too deep", "POST", "/api/diagrams", {"content": TOO_DEEP.encode()}, 422),
    ("NaN in canvas", "POST", "/api/diagrams",
     {"content": b'{"name": "x", "canvas": {"a": NaN}}'}, 400),
    ("json array body", "POST", "/api/diagrams", {"json": [1, 2]}, 422),
    ("unknown field", "POST", "/api/diagrams", {"json": {"name": "x", "owner_id": 1}}, 422),
    ("missing name", "POST", "/api/diagrams", {"json": {"canvas": {}}}, 422),
    ("name not a string", "POST", "/api/diagrams", {"json": {"name": ["x"]}}, 422),
    ("canvas not an object", "POST", "/api/diagrams", {"json": {"name": "x", "canvas": 3}}, 422),
    ("blank name", "POST", "/api/diagrams", {"json": {"name": " \t "}}, 422),
    ("NUL in name", "POST", "/api/diagrams", {"json": {"name": "a\u0000b"}}, 422),
    ("newline in name", "POST", "/api/diagrams", {"json": {"name": "a\nb"}}, 422),
    ("name too long", "POST", "/api/diagrams", {"json": {"name": "n" * 201}}, 422),
    ("empty update", "PUT", "/api/diagrams/{id}", {"json": {}}, 422),
    ("unknown update field", "PUT", "/api/diagrams/{id}",
     {"json": {"name": "x", "current_version": 9}}, 422),
    ("malformed update", "PUT", "/api/diagrams/{id}", {"content": b"{,}"}, 400),
    ("id not a uuid", "GET", "/api/diagrams/not-a-uuid", {}, 422),
    ("sql in id", "GET", "/api/diagrams/1' OR '1'='1", {}, 422),
    ("version zero", "GET", "/api/diagrams/{id}/versions/0", {}, 422),
    ("version huge", "GET", "/api/diagrams/{id}/versions/99999999999999999999", {}, 422),
    ("negative limit", "GET", "/api/diagrams?limit=-1", {}, 422),
    ("limit not a number", "GET", "/api/diagrams?limit=ten", {}, 422),
    ("upload without file", "POST", "/api/diagrams/{id}/uploads", {"json": {}}, 422),
    ("garbage multipart", "POST", "/api/diagrams/{id}/uploads",
     {"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=zz"}},
     400),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"),
                         [case[1:] for case in BAD_AUTHENTICATED],
                         ids=[case[0] for case in BAD_AUTHENTICATED])
def test_bad_input_is_a_4xx_json_error(gateway: httpx.Client, user: dict[str, str],
                                       diagram_id: str, method: str, path: str,
                                       kwargs: dict[str, Any], status: int) -> None:
    headers = {**user, **JSON, **kwargs.pop("headers", {})} if "json" not in kwargs else {
        **user, **kwargs.pop("headers", {})}
    answer = gateway.request(method, path.replace("{id}", diagram_id), headers=headers,
                             **kwargs)
    _assert_json_error(answer, status)


def _complete(response: bytes) -> bool:
    """True once a raw HTTP response holds its whole body (by its Content-Length)."""
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def test_a_declared_length_over_the_limit_is_413_before_the_body(
        app_stack: Stack, user: dict[str, str]) -> None:
    port = app_stack.settings.gateway_port
    with socket.create_connection((app_stack.settings.host, port), timeout=30) as conn:
        conn.sendall(("POST /api/diagrams HTTP/1.1\r\nHost: gateway\r\n"
                      f"Authorization: {user['Authorization']}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 999999999\r\n"
                      "\r\n{}").encode())
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = conn.recv(65536)  # the head and the body may come in separate segments
            if not chunk:
                break
            received += chunk
        answer = received.decode("utf-8", "replace")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413")
    assert "over the limit" in json.loads(body)["detail"]


def test_a_streamed_body_over_the_limit_is_413(app_stack: Stack, gateway: httpx.Client,
                                               user: dict[str, str]) -> None:
    limit = app_stack.settings.max_upload_bytes

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent <= limit + 1024 * 1024:
            yield b" " * 1024 * 1024
            sent += 1024 * 1024

    answer = gateway.post("/api/diagrams", content=chunks(), headers={**user, **JSON})
    _assert_json_error(answer, 413)


def test_an_upload_over_the_limit_is_413_and_stores_nothing(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str], diagram_id: str) -> None:
    too_big = b"\x00" * (app_stack.settings.max_upload_bytes + 1)
    answer = gateway.post(f"/api/diagrams/{diagram_id}/uploads",
                          files={"file": ("big.bin", too_big, "application/octet-stream")},
                          headers=user)
    _assert_json_error(answer, 413)
    listed = gateway.get(f"/api/diagrams/{diagram_id}/uploads", headers=user).json()
    assert listed["uploads"] == []


@pytest.mark.parametrize("email", ["plain", "a@", "@b.com", "a b@c.com", "a@b@c.com",
                                   "x" * 250 + "@example.com", "a@-bad-.com", ""])
def test_invalid_email_is_422(gateway: httpx.Client, email: str) -> None:
    answer = gateway.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    _assert_json_error(answer, 422)


@pytest.mark.parametrize("password", ["short1A!", "password123", "aaaaaaaaaaaaaa",
                                      "onlylowercaseletters", "1234567890123",
                                      "weakling-pw-user", "P" * 129 + "a1"])
def test_weak_password_is_422_and_never_echoed(gateway: httpx.Client, password: str) -> None:
    email = "weakling-pw-user@example.com"
    answer = gateway.post("/api/auth/register", json={"email": email, "password": password})
    _assert_json_error(answer, 422)
    assert password not in answer.text


@pytest.mark.parametrize("body", [
    {"email": "a@example.com", "password": "Sturdy-Pass-42", "role": "admin"},
    {"email": "a@example.com"},
    {"email": "a@example.com", "password": "Sturdy-Pass-42", "full_name": "x\u0007y"},
])
def test_register_refuses_unknown_missing_and_control_fields(gateway: httpx.Client,
                                                            body: dict[str, str]) -> None:
    _assert_json_error(gateway.post("/api/auth/register", json=body), 422)


def test_duplicate_email_is_409_case_insensitively(gateway: httpx.Client) -> None:
    email = f"Dup-{uuid.uuid4().hex[:8]}@Example.com"
    assert gateway.post("/api/auth/register",
                        json={"email": email, "password": PASSWORD}).status_code == 201
    again = gateway.post("/api/auth/register", json={"email": email.lower(),
                                                     "password": PASSWORD})
    _assert_json_error(again, 409)


@pytest.mark.parametrize("email", ["' OR '1'='1", "admin@autograph.local' --",
                                   "a@b.c; DROP TABLE users;"])
def test_sql_metacharacters_in_login_are_just_a_wrong_login(gateway: httpx.Client,
                                                           email: str) -> None:
    answer = gateway.post("/api/auth/login", json={"email": email, "password": "x' OR 1=1"})
    _assert_json_error(answer, 401)


@pytest.mark.parametrize("name", [
    "Robert'); DROP TABLE diagrams;--", "' OR '1'='1", "%_\\ $$ ; SELECT pg_sleep(5); $$",
    "名前のある図 🎉", "Ünïcödé — ∑ ≠ ∞", "עברית mixed RTL", "a" * 200,
])
def test_sql_metacharacters_and_unicode_round_trip(gateway: httpx.Client,
                                                   user: dict[str, str], name: str) -> None:
    canvas = {"label": name, "nodes": [{"text": name}]}
    created = gateway.post("/api/diagrams", json={"name": name, "canvas": canvas},
                           headers=user)
    assert created.status_code == 201, created.text
    fetched = gateway.get(f"/api/diagrams/{created.json()['id']}", headers=user).json()
    assert (fetched["name"], fetched["canvas"]) == (name, canvas)
    assert gateway.get("/api/diagrams", headers=user).status_code == 200


def test_unicode_account_round_trip(gateway: httpx.Client) -> None:
    email = f"zoë-{uuid.uuid4().hex[:6]}@bücher.example"
    created = gateway.post("/api/auth/register", json={
        "email": email, "password": "Pässwörd-🔑-42", "full_name": "Zoë Ω 🎉"})
    assert created.status_code == 201, created.text
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Pässwörd-🔑-42"})
    assert token.status_code == 200
    me = gateway.get("/api/users/me",
                     headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["full_name"] == "Zoë Ω 🎉"
