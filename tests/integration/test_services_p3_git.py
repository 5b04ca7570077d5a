"""The git service on the real stack: versions pushed as commits into a bare repository
(checked with the git CLI), incremental pushes, the log, and imports back."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from autograph.stack.lifecycle import Stack


def _canvas(label: str) -> dict[str, object]:
    return {"nodes": [{"id": "n1", "label": label}, {"id": "n2", "label": "Ünïcode ✓"}],
            "edges": [{"source": "n1", "target": "n2"}]}


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


def _user(gateway: httpx.Client) -> dict[str, str]:
    email = f"p3-git-{uuid.uuid4().hex[:10]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="module")
def user(gateway: httpx.Client) -> dict[str, str]:
    return _user(gateway)


def _diagram_with_versions(gateway: httpx.Client, user: dict[str, str], count: int) -> str:
    created = gateway.post("/api/diagrams", json={"name": "Git diagram",
                                                  "canvas": _canvas("v1")}, headers=user)
    diagram_id = str(created.json()["id"])
    for number in range(2, count + 1):
        gateway.put(f"/api/diagrams/{diagram_id}", json={"canvas": _canvas(f"v{number}")},
                    headers=user)
    return diagram_id


def test_push_commits_every_version_once_and_git_can_read_them(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    diagram_id = _diagram_with_versions(gateway, user, 3)
    first = gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user)
    assert first.status_code == 200, first.text
    assert (first.json()["pushed_versions"], first.json()["already_pushed"]) == ([1, 2, 3], 0)
    again = gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user).json()
    assert (again["pushed_versions"], again["head"]) == ([], first.json()["head"])
    gateway.put(f"/api/diagrams/{diagram_id}", json={"canvas": _canvas("v4")}, headers=user)
    later = gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user).json()
    assert (later["pushed_versions"], later["already_pushed"]) == ([4], 3)

    repo = app_stack.settings.data_dir / "git" / later["repository"]
    subjects = subprocess.run(["git", f"--git-dir={repo}", "log", "--format=%s", "main"],
                              capture_output=True, text=True, check=True).stdout.split("\n")
    assert subjects[:4] == [f"Git diagram (version {n})" for n in (4, 3, 2, 1)]
    content = subprocess.run(["git", f"--git-dir={repo}", "show", "main~3:diagram.json"],
                             capture_output=True, text=True, check=True).stdout
    assert '"label": "v1"' in content and "Ünïcode ✓" in content
    fsck = subprocess.run(["git", f"--git-dir={repo}", "fsck", "--strict"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_log_lists_versions_newest_first(gateway: httpx.Client, user: dict[str, str]) -> None:
    diagram_id = _diagram_with_versions(gateway, user, 2)
    gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user)
    log = gateway.get("/api/git/log", params={"diagram_id": diagram_id}, headers=user)
    assert log.status_code == 200, log.text
    commits = log.json()["commits"]
    assert [c["version"] for c in commits] == [2, 1]
    versions = gateway.get(f"/api/diagrams/{diagram_id}/versions", headers=user).json()
    assert {v["version"]: v["sha256"] for v in versions["versions"]} == {
        c["version"]: c["sha256"] for c in commits}


def test_import_restores_an_old_commit_as_a_new_version(gateway: httpx.Client,
                                                        user: dict[str, str]) -> None:
    diagram_id = _diagram_with_versions(gateway, user, 3)
    gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user)
    commits = gateway.get("/api/git/log", params={"diagram_id": diagram_id},
                          headers=user).json()["commits"]
    first = next(c for c in commits if c["version"] == 1)
    imported = gateway.post("/api/git/import", headers=user,
                            json={"diagram_id": diagram_id, "commit": first["commit"]})
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert (body["created"], body["verified"]) == (False, True)
    current = gateway.get(f"/api/diagrams/{diagram_id}", headers=user).json()
    assert current["current_version"] == 4
    assert current["canvas"] == _canvas("v1")


def test_import_recreates_a_deleted_diagram(gateway: httpx.Client,
                                            user: dict[str, str]) -> None:
    diagram_id = _diagram_with_versions(gateway, user, 2)
    gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user)
    assert gateway.delete(f"/api/diagrams/{diagram_id}", headers=user).status_code == 204
    imported = gateway.post("/api/git/import", json={"diagram_id": diagram_id}, headers=user)
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["created"] is True and body["diagram"]["id"] != diagram_id
    restored = gateway.get(f"/api/diagrams/{body['diagram']['id']}", headers=user).json()
    assert (restored["name"], restored["canvas"]) == ("Git diagram", _canvas("v2"))


@pytest.mark.parametrize("commit", ["--upload-pack=touch", "HEAD~1", "zz12", "0" * 40])
def test_import_refuses_bad_or_unknown_commits(gateway: httpx.Client, user: dict[str, str],
                                               commit: str) -> None:
    diagram_id = _diagram_with_versions(gateway, user, 1)
    gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user)
    answer = gateway.post("/api/git/import", headers=user,
                          json={"diagram_id": diagram_id, "commit": commit})
    assert answer.status_code == (404 if commit == "0" * 40 else 400), answer.text


def test_other_users_cannot_push_or_read(gateway: httpx.Client, user: dict[str, str]) -> None:
    diagram_id = _diagram_with_versions(gateway, user, 1)
    gateway.post("/api/git/push", json={"diagram_id": diagram_id}, headers=user)
    other = _user(gateway)
    assert gateway.post("/api/git/push", json={"diagram_id": diagram_id},
                        headers=other).status_code == 404
    assert gateway.get("/api/git/log", params={"diagram_id": diagram_id},
                       headers=other).status_code == 404
    assert gateway.post("/api/git/import", json={"diagram_id": diagram_id},
                        headers=other).status_code == 404
