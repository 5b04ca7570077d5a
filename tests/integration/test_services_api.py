"""The application API through the gateway on the real stack: the plan's verification
commands, 401/403/404, version history, uploads, deletion, docs and `autograph admin token`."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from autograph.cli.main import app as cli_app
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack
from stackutil import settings_env


def _login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = client.post("/api/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _new_user(client: httpx.Client) -> dict[str, str]:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    created = client.post("/api/auth/register",
                          json={"email": email, "password": "Sturdy-Pass-42"})
    assert created.status_code == 201, created.text
    return _login(client, email, "Sturdy-Pass-42")


def _objects(stack: Stack, bucket: str, prefix: str) -> list[str]:
    listing = app_client(stack.settings, stack.creds).list_objects_v2(Bucket=bucket,
                                                                      Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def admin(app_stack: Stack, gateway: httpx.Client) -> dict[str, str]:
    password = (app_stack.settings.secrets_dir / "admin-password").read_text().strip()
    return _login(gateway, app_stack.settings.admin_email, password)


@pytest.fixture(scope="module")
def user(gateway: httpx.Client) -> dict[str, str]:
    return _new_user(gateway)


@pytest.mark.parametrize("service", ["gateway", "auth", "diagram"])
def test_each_service_health_is_healthy(app_stack: Stack, service: str) -> None:
    answer = httpx.get(f"{app_stack.settings.service_url(service)}/health", trust_env=False)
    assert answer.status_code == 200
    assert answer.json()["status"] == "healthy"


def test_health_all_lists_every_component(gateway: httpx.Client) -> None:
    answer = gateway.get("/health/all")
    assert answer.status_code == 200, {name: c for name, c in answer.json()["components"].items()
                                       if c["status"] != "healthy"}
    body = answer.json()
    assert body["status"] == "healthy"
    assert {"postgres", "redis", "s3", "gateway", "auth", "diagram"} <= set(body["components"])
    assert body["components"]["auth"]["priority"] == 2


def test_admin_password_file_is_private(app_stack: Stack) -> None:
    path = app_stack.settings.secrets_dir / "admin-password"
    assert path.stat().st_mode & 0o777 == 0o600


def test_plan_verification_commands_with_a_token(app_stack: Stack, gateway: httpx.Client,
                                                 admin: dict[str, str]) -> None:
    me = gateway.get("/api/users/me", headers=admin)
    assert me.status_code == 200
    assert me.json()["email"] == app_stack.settings.admin_email
    assert me.json()["role"] == "admin"
    created = gateway.post("/api/diagrams", json={"name": "DR Test Diagram"}, headers=admin)
    assert created.status_code == 201
    assert created.json()["name"] == "DR Test Diagram"
    assert created.json()["current_version"] == 1
    fetched = gateway.get(f"/api/diagrams/{created.json()['id']}", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json()["canvas"] == {}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/users/me"), ("GET", "/api/diagrams"), ("POST", "/api/diagrams"),
    ("POST", "/api/auth/logout"), ("GET", "/api/users"),
    ("GET", f"/api/diagrams/{uuid.UUID(int=1)}/versions"),
])
def test_no_token_is_401(gateway: httpx.Client, method: str, path: str) -> None:
    answer = gateway.request(method, path, json={"name": "x"} if method == "POST" else None)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "token" in answer.json()["detail"]


@pytest.mark.parametrize("token", ["not-a-session", "x" * 600, "a b"])
def test_unknown_token_is_401(gateway: httpx.Client, token: str) -> None:
    answer = gateway.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["detail"]


def test_admin_route_refuses_a_plain_user_with_403(gateway: httpx.Client,
                                                   user: dict[str, str]) -> None:
    answer = gateway.get("/api/users", headers=user)
    assert answer.status_code == 403
    assert answer.json()["detail"] == "admin role required"


def test_admin_route_accepts_an_admin_session_and_the_api_key(
        app_stack: Stack, gateway: httpx.Client, admin: dict[str, str]) -> None:
    key = {"Authorization": f"Bearer {app_stack.creds.admin_api_key}"}
    assert gateway.get("/api/users", headers=admin).status_code == 200
    listed = gateway.get("/api/users", headers=key)
    assert listed.status_code == 200
    assert app_stack.settings.admin_email in [u["email"] for u in listed.json()["users"]]


def test_api_key_is_not_a_user_session(app_stack: Stack, gateway: httpx.Client) -> None:
    key = {"Authorization": f"Bearer {app_stack.creds.admin_api_key}"}
    assert gateway.get("/api/users/me", headers=key).status_code == 401


def test_someone_elses_diagram_is_404(gateway: httpx.Client, user: dict[str, str]) -> None:
    owner = _new_user(gateway)
    diagram = gateway.post("/api/diagrams", json={"name": "private"}, headers=owner).json()
    base = f"/api/diagrams/{diagram['id']}"
    assert gateway.get(base, headers=user).status_code == 404
    assert gateway.put(base, json={"name": "stolen"}, headers=user).status_code == 404
    assert gateway.delete(base, headers=user).status_code == 404
    assert gateway.get(f"{base}/versions", headers=user).status_code == 404
    assert gateway.get(f"{base}/versions/1", headers=user).status_code == 404
    assert gateway.get(f"{base}/uploads", headers=user).status_code == 404
    upload = gateway.post(f"{base}/uploads", files={"file": ("a.txt", b"hi", "text/plain")},
                          headers=user)
    assert upload.status_code == 404
    assert diagram["id"] not in [d["id"] for d in
                                 gateway.get("/api/diagrams", headers=user).json()["diagrams"]]
    assert gateway.get(base, headers=owner).json()["name"] == "private"


def test_unknown_diagram_and_version_are_404(gateway: httpx.Client,
                                             user: dict[str, str]) -> None:
    assert gateway.get(f"/api/diagrams/{uuid.uuid4()}", headers=user).status_code == 404
    diagram = gateway.post("/api/diagrams", json={"name": "one"}, headers=user).json()
    missing = gateway.get(f"/api/diagrams/{diagram['id']}/versions/2", headers=user)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "diagram version not found"


def _sha(canvas: dict[str, object]) -> str:
    data = json.dumps(canvas, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def test_three_updates_make_a_history_of_versions(app_stack: Stack, gateway: httpx.Client,
                                                  user: dict[str, str]) -> None:
    first = {"nodes": [{"id": "a"}], "edges": []}
    second = {"nodes": [{"id": "a"}, {"id": "b"}], "edges": [["a", "b"]]}
    fourth = {"nodes": [], "edges": [], "note": "cleared ✓"}
    diagram = gateway.post("/api/diagrams", json={"name": "history", "canvas": first},
                           headers=user).json()
    base = f"/api/diagrams/{diagram['id']}"
    for change in ({"canvas": second}, {"name": "history, renamed"}, {"canvas": fourth}):
        answer = gateway.put(base, json=change, headers=user)
        assert answer.status_code == 200, answer.text
    versions = gateway.get(f"{base}/versions", headers=user).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    assert [v["name"] for v in versions] == ["history"] * 2 + ["history, renamed"] * 2
    assert [v["sha256"] for v in versions] == [_sha(first), _sha(second), _sha(second),
                                               _sha(fourth)]
    for number, canvas in ((1, first), (2, second), (3, second), (4, fourth)):
        assert gateway.get(f"{base}/versions/{number}", headers=user).json()["canvas"] == canvas
    current = gateway.get(base, headers=user).json()
    assert (current["current_version"], current["canvas"]) == (4, fourth)
    # A rename shares the canvas object of the version before it: three objects in S3.
    assert len(_objects(app_stack, "diagrams", f"{diagram['id']}/")) == 3


def test_10_mb_upload_round_trip_keeps_bytes_and_content_type(
        gateway: httpx.Client, user: dict[str, str]) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    diagram = gateway.post("/api/diagrams", json={"name": "with file"}, headers=user).json()
    base = f"/api/diagrams/{diagram['id']}/uploads"
    created = gateway.post(base, files={"file": ("photo ü.png", payload, "image/png")},
                           headers=user)
    assert created.status_code == 201, created.text
    record = created.json()
    assert (record["sha256"], record["size_bytes"]) == (digest, len(payload))
    assert (record["filename"], record["content_type"]) == ("photo ü.png", "image/png")
    listed = gateway.get(base, headers=user).json()
    assert [u["id"] for u in listed["uploads"]] == [record["id"]]
    download = gateway.get(f"{base}/{record['id']}", headers=user)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == digest
    assert download.headers["content-type"] == "image/png"
    assert download.headers["x-checksum-sha256"] == digest


def test_delete_removes_rows_and_objects(app_stack: Stack, gateway: httpx.Client,
                                         user: dict[str, str]) -> None:
    diagram = gateway.post("/api/diagrams", json={"name": "doomed", "canvas": {"a": 1}},
                           headers=user).json()
    base = f"/api/diagrams/{diagram['id']}"
    gateway.put(base, json={"canvas": {"a": 2}}, headers=user)
    gateway.post(f"{base}/uploads", files={"file": ("f.bin", b"\x00\x01", None)},
                 headers=user)
    assert _objects(app_stack, "diagrams", f"{diagram['id']}/")
    assert _objects(app_stack, "uploads", f"{diagram['id']}/")
    assert gateway.delete(base, headers=user).status_code == 204
    assert gateway.get(base, headers=user).status_code == 404
    assert _objects(app_stack, "diagrams", f"{diagram['id']}/") == []
    assert _objects(app_stack, "uploads", f"{diagram['id']}/") == []


def test_repeated_failed_logins_are_throttled_with_429(gateway: httpx.Client) -> None:
    email = f"throttled-{uuid.uuid4().hex[:8]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    for _ in range(5):
        wrong = gateway.post("/api/auth/login", json={"email": email, "password": "nope"})
        assert wrong.status_code == 401
    locked = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"})
    assert locked.status_code == 429
    assert "too many failed logins" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) >= 1


def test_logout_ends_the_session(gateway: httpx.Client) -> None:
    session = _new_user(gateway)
    assert gateway.get("/api/users/me", headers=session).status_code == 200
    assert gateway.post("/api/auth/logout", headers=session).status_code == 204
    assert gateway.get("/api/users/me", headers=session).status_code == 401


def test_admin_token_command_prints_a_working_admin_token(app_stack: Stack,
                                                          gateway: httpx.Client) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["admin", "token"], env=settings_env(app_stack.settings))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert gateway.get("/api/users", headers={"Authorization": f"Bearer {token}"}
                       ).status_code == 200


def test_admin_token_command_prints_the_api_key(app_stack: Stack) -> None:
    result = CliRunner().invoke(cli_app, ["admin", "token", "--api-key"],
                                env=settings_env(app_stack.settings))
    assert result.exit_code == 0
    assert result.stdout.strip() == app_stack.creds.admin_api_key


def test_docs_show_the_services_routes(gateway: httpx.Client) -> None:
    assert gateway.get("/docs").status_code == 200
    paths = gateway.get("/openapi.json").json()["paths"]
    assert {"/api/auth/login", "/api/users/me", "/api/diagrams",
            "/api/diagrams/{diagram_id}/versions/{version}", "/health/all"} <= set(paths)
