"""The 5xx answers found by probing, each now a 4xx (bad input) or a 503 naming what is missing;
an unhandled error is logged once, with an access line."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import psycopg
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from autograph.config import load_settings
from autograph.dr.buckets.models import validate_bucket
from autograph.errors import InvalidInput
from autograph.s3.boto import app_client
from autograph.services.common.app import create_app
from autograph.stack.lifecycle import Stack

PASSWORD = "Sturdy-Pass-42"


def _raw(stack: Stack, service: str, request: bytes, *, close_early: bool = False) -> bytes:
    """Send raw bytes to a service and return its answer (b"" when we hang up first)."""
    with socket.create_connection((stack.settings.host, stack.settings.service_port(service)),
                                  timeout=15) as conn:
        conn.sendall(request)
        if close_early:
            return b""
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("service", ["gateway", "frontend"])
@pytest.mark.parametrize("path", ["/api/diagrams/%01", "/api/diagrams/a%1bb",
                                  "/api/diagrams/%7f"])
def test_control_characters_in_the_path_are_400(app_stack: Stack, service: str,
                                                path: str) -> None:
    answer = _raw(app_stack, service, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                  "Connection: close\r\n\r\n".encode())
    assert _status(answer) == 400, answer[:300]
    assert b'"detail"' in answer


@pytest.mark.parametrize("service", ["gateway", "frontend"])
def test_dot_dot_encoded_slash_is_refused_not_resolved(app_stack: Stack, service: str,
                                                       user: dict[str, str]) -> None:
    auth = user["Authorization"]
    for path in ("/api/diagrams/..%2f..%2fhealth", "/api/diagrams/..%2F..%2Fadmin/backup/list",
                 "/api/users/..%2fdiagrams"):
        answer = _raw(app_stack, service, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: {auth}\r\nConnection: close\r\n\r\n".encode())
        assert _status(answer) == 400, (path, answer[:300])


@pytest.mark.parametrize("service", ["gateway", "frontend"])
def test_a_non_ascii_header_value_is_passed_on_not_a_500(app_stack: Stack,
                                                         service: str) -> None:
    answer = _raw(app_stack, service, "GET /api/diagrams HTTP/1.1\r\nHost: x\r\n"
                  "X-Name: caf\u00e9 \u2603\r\nConnection: close\r\n\r\n".encode())
    assert _status(answer) == 401, answer[:300]


def test_content_length_with_chunked_is_not_a_500(app_stack: Stack) -> None:
    body = b'{"email": "nobody@example.com", "password": "Wrong-Pass-42"}'
    request = (b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    answer = _raw(app_stack, "gateway", request)
    assert _status(answer) < 500, answer[:300]


def test_a_client_gone_mid_body_leaves_no_unhandled_error(app_stack: Stack) -> None:
    log = app_stack.settings.log_dir / "gateway.log"
    before = log.read_text(errors="replace").count("unhandled error")
    _raw(app_stack, "gateway", b"POST /api/diagrams HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"name\": ",
         close_early=True)
    time.sleep(1.0)
    text = log.read_text(errors="replace")
    assert text.count("unhandled error") == before
    assert "Exception in ASGI application" not in text


def test_an_impossible_date_in_a_snapshot_name_is_400(gateway: httpx.Client,
                                                      admin: dict[str, str]) -> None:
    for route in ("/api/admin/minio/snapshots/verify", "/api/admin/minio/snapshots/restore"):
        answer = gateway.post(route, params={"snapshot_name": "snap_diagrams_20261399T000000000Z"},
                              headers=admin)
        assert answer.status_code == 400, answer.text
        assert "not a real UTC time" in answer.json()["detail"]


@pytest.mark.parametrize("bucket", ["xn--bcher-kva", "sthree-data", "data-s3alias", "a-.b"])
def test_a_bucket_name_s3_reserves_is_400(gateway: httpx.Client, admin: dict[str, str],
                                          bucket: str) -> None:
    with pytest.raises(InvalidInput):
        validate_bucket(bucket, "target bucket")
    answer = gateway.post("/api/admin/minio/backup/restore",
                          params={"backup_name": "any_backup", "target_bucket": bucket},
                          headers=admin)
    assert answer.status_code == 400, answer.text


def test_s3_refusing_a_bucket_name_is_400(app_stack: Stack) -> None:
    from autograph.s3.bulk import S3Client
    from autograph.s3.sigv4 import S3Endpoint

    client = S3Client(S3Endpoint.application(app_stack.settings, app_stack.creds))
    try:
        with pytest.raises(InvalidInput, match="S3 refused to create bucket"):
            client.create_bucket("Bad_Bucket")  # upper case and underscore: S3 says no
    finally:
        client.close()


def _sql(stack: Stack, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    settings = stack.settings
    with psycopg.connect(host=settings.host, port=settings.pg_port, user=settings.pg_user,
                         password=stack.creds.pg_password, dbname=settings.pg_database) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def test_a_diagram_whose_canvas_object_is_gone_is_503_naming_it(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    created = gateway.post("/api/diagrams", json={"name": "lost", "canvas": {"n": 1}},
                           headers=user)
    assert created.status_code == 201, created.text
    diagram = created.json()["id"]
    key = str(_sql(app_stack, "SELECT object_key FROM diagram_versions WHERE diagram_id = %s",
                   (diagram,))[0][0])
    s3 = app_client(app_stack.settings, app_stack.creds)
    body = s3.get_object(Bucket="diagrams", Key=key)["Body"].read()
    s3.delete_object(Bucket="diagrams", Key=key)
    try:
        answer = gateway.get(f"/api/diagrams/{diagram}", headers=user)
        assert answer.status_code == 503, answer.text
        assert key in answer.json()["detail"] and "missing" in answer.json()["detail"]
    finally:  # the stack is shared: later tests check that every row names an object
        s3.put_object(Bucket="diagrams", Key=key, Body=body)


def test_an_unhandled_error_is_logged_once_with_an_access_line(
        caplog: pytest.LogCaptureFixture, tmp_path: object) -> None:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app = create_app("t", load_settings(home=str(tmp_path)), [router], {})
    with caplog.at_level(logging.INFO), TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500 and "request id" in answer.json()["detail"]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    access = [r for r in caplog.records if r.getMessage() == "request"]
    assert [getattr(r, "status", None) for r in access] == [500]
