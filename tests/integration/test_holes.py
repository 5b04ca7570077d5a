"""Holes found by probing: uploads served as pages, secrets in logs, readable log files,
jobs accepted (202) for input they would refuse."""

from __future__ import annotations

import time

import httpx
import pytest

from autograph.logs import redact
from autograph.stack.lifecycle import Stack

PASSWORD = "Sturdy-Pass-42"


@pytest.mark.parametrize(("sent", "served"), [
    ("text/html", "application/octet-stream"),
    ("image/svg+xml", "application/octet-stream"),
    ("application/javascript", "application/octet-stream"),
    ("text/xml", "application/octet-stream"),
    ("image/png", "image/png"),
    ("application/pdf", "application/pdf"),
])
def test_uploads_are_served_as_data_unless_a_safe_type(gateway: httpx.Client,
                                                       user: dict[str, str], sent: str,
                                                       served: str) -> None:
    diagram = gateway.post("/api/diagrams", json={"name": "files"}, headers=user).json()
    base = f"/api/diagrams/{diagram['id']}/uploads"
    body = b"<html><script>alert(document.cookie)</script></html>"
    created = gateway.post(base, files={"file": ("x", body, sent)}, headers=user)
    assert created.status_code == 201, created.text
    download = gateway.get(f"{base}/{created.json()['id']}", headers=user)
    assert download.status_code == 200 and download.content == body
    assert download.headers["content-type"] == served
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment")


def test_every_answer_says_nosniff(gateway: httpx.Client) -> None:
    for path in ("/health", "/api/diagrams", "/no-such-page"):
        assert gateway.get(path).headers["x-content-type-options"] == "nosniff"


def test_a_key_in_a_query_string_never_reaches_the_logs(app_stack: Stack,
                                                        gateway: httpx.Client) -> None:
    key = app_stack.creds.admin_api_key
    for path in ("/api/diagrams", "/api/users/me", "/api/admin/backup/list"):
        gateway.get(path, params={"api_key": key, "token": key})
    time.sleep(0.5)
    for log in app_stack.settings.log_dir.glob("*.log"):
        assert key not in log.read_text(errors="replace"), log.name


def test_log_files_are_not_readable_by_others(app_stack: Stack) -> None:
    logs = list(app_stack.settings.log_dir.glob("*.log"))
    assert any(log.name == "gateway.log" for log in logs)
    for log in logs:
        assert log.stat().st_mode & 0o027 == 0, (log.name, oct(log.stat().st_mode))
    assert app_stack.settings.log_dir.stat().st_mode & 0o007 == 0


def test_redact_hides_queries_and_bearer_tokens() -> None:
    line = ('HTTP Request: GET http://127.0.0.1:8082/api/x?api_key=s3cr3t&a=1 "HTTP/1.1 401" '
            "Authorization: Bearer abc.def-123")
    shown = redact(line)
    assert "s3cr3t" not in shown and "abc.def-123" not in shown
    assert "http://127.0.0.1:8082/api/x?[redacted]" in shown


@pytest.mark.parametrize(("route", "params", "status"), [
    ("/api/admin/minio/backup/create", {"bucket": "minio-backups"}, 400),
    ("/api/admin/minio/backup/create", {"bucket": "no-such-bucket-here"}, 404),
    ("/api/admin/minio/snapshots/create", {"bucket": "autograph-backups"}, 400),
    ("/api/admin/minio/snapshots/create", {"bucket": "no-such-bucket-here"}, 400),
])
def test_wait_false_refuses_bad_input_before_202(gateway: httpx.Client, admin: dict[str, str],
                                                 route: str, params: dict[str, str],
                                                 status: int) -> None:
    answer = gateway.post(route, params={**params, "wait": "false"}, headers=admin)
    assert answer.status_code == status, answer.text
    assert isinstance(answer.json()["detail"], str)
