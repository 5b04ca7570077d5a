"""The export service on the real stack: SVG (through the renderer), PNG and PDF exports
stored in the ``exports`` bucket with their record in the object's metadata, downloads
checked against it, and other users kept out."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack

CANVAS = {"nodes": [{"id": "u", "label": "User"}, {"id": "db", "label": "Database",
                                                   "shape": "cylinder"}],
          "edges": [{"source": "u", "target": "db", "label": "reads"}]}


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


def _user(gateway: httpx.Client) -> dict[str, str]:
    email = f"p3-export-{uuid.uuid4().hex[:10]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="module")
def user(gateway: httpx.Client) -> dict[str, str]:
    return _user(gateway)


@pytest.fixture(scope="module")
def diagram_id(gateway: httpx.Client, user: dict[str, str]) -> str:
    created = gateway.post("/api/diagrams", json={"name": "Export me", "canvas": CANVAS},
                           headers=user)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize(("fmt", "media", "magic"), [
    ("svg", "image/svg+xml", b"<?xml"), ("png", "image/png", b"\x89PNG"),
    ("pdf", "application/pdf", b"%PDF")])
def test_export_is_stored_recorded_and_downloadable(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str], diagram_id: str,
        fmt: str, media: str, magic: bytes) -> None:
    created = gateway.post("/api/exports", json={"diagram_id": diagram_id, "format": fmt},
                           headers=user)
    assert created.status_code == 201, created.text
    record = created.json()
    assert (record["diagram_id"], record["format"], record["version"]) == (diagram_id, fmt, 1)
    download = gateway.get(record["download_url"], headers=user)
    assert download.status_code == 200
    assert download.headers["content-type"] == media
    assert download.content.startswith(magic)
    digest = hashlib.sha256(download.content).hexdigest()
    assert digest == record["sha256"] == download.headers["x-checksum-sha256"]
    assert len(download.content) == record["size_bytes"]
    s3 = app_client(app_stack.settings, app_stack.creds)
    listed = s3.list_objects_v2(Bucket="exports", Prefix="users/")["Contents"]
    key = next(item["Key"] for item in listed if record["id"] in item["Key"])
    head = s3.head_object(Bucket="exports", Key=key)
    assert key.endswith(f"/{record['id']}.{fmt}")
    assert head["Metadata"]["diagram-id"] == diagram_id
    assert head["Metadata"]["sha256"] == digest
    assert head["ContentType"] == media


def test_svg_export_is_the_renderers_output(gateway: httpx.Client, user: dict[str, str],
                                            diagram_id: str) -> None:
    record = gateway.post("/api/exports", json={"diagram_id": diagram_id, "format": "svg"},
                          headers=user).json()
    exported = gateway.get(record["download_url"], headers=user).content
    rendered = gateway.post("/api/render/svg", headers=user,
                            json={"canvas": CANVAS, "title": "Export me"}).content
    assert exported == rendered


def test_export_of_an_older_version(gateway: httpx.Client, user: dict[str, str]) -> None:
    created = gateway.post("/api/diagrams", json={"name": "Versions", "canvas": CANVAS},
                           headers=user).json()
    changed = {"nodes": [{"id": "x", "label": "Only node"}], "edges": []}
    gateway.put(f"/api/diagrams/{created['id']}", json={"canvas": changed}, headers=user)
    old = gateway.post("/api/exports", headers=user,
                       json={"diagram_id": created["id"], "format": "svg", "version": 1})
    assert old.status_code == 201, old.text
    assert old.json()["version"] == 1
    body = gateway.get(old.json()["download_url"], headers=user).text
    assert "Database" in body and "Only node" not in body


def test_list_info_and_delete(gateway: httpx.Client, user: dict[str, str],
                              diagram_id: str) -> None:
    record = gateway.post("/api/exports", json={"diagram_id": diagram_id, "format": "png"},
                          headers=user).json()
    listed = gateway.get("/api/exports", params={"diagram_id": diagram_id}, headers=user)
    assert record["id"] in {e["id"] for e in listed.json()["exports"]}
    info = gateway.get(f"/api/exports/{record['id']}/info", headers=user)
    assert info.json()["sha256"] == record["sha256"]
    assert gateway.delete(f"/api/exports/{record['id']}", headers=user).status_code == 204
    assert gateway.get(record["download_url"], headers=user).status_code == 404


def test_other_users_get_404_for_exports_and_diagrams(gateway: httpx.Client,
                                                      user: dict[str, str],
                                                      diagram_id: str) -> None:
    record = gateway.post("/api/exports", json={"diagram_id": diagram_id, "format": "svg"},
                          headers=user).json()
    other = _user(gateway)
    assert gateway.get(record["download_url"], headers=other).status_code == 404
    assert gateway.delete(f"/api/exports/{record['id']}", headers=other).status_code == 404
    refused = gateway.post("/api/exports", json={"diagram_id": diagram_id, "format": "svg"},
                           headers=other)
    assert refused.status_code == 404
    assert gateway.get(record["download_url"], headers=user).status_code == 200


@pytest.mark.parametrize("body", [{"diagram_id": "not-a-uuid", "format": "svg"},
                                  {"diagram_id": str(uuid.uuid4()), "format": "gif"}])
def test_bad_requests_are_422(gateway: httpx.Client, user: dict[str, str],
                              body: dict[str, str]) -> None:
    assert gateway.post("/api/exports", json=body, headers=user).status_code == 422
