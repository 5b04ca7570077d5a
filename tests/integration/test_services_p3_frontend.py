"""The frontend on the real stack: the UI's files with their security headers, a fixed file
list, the same-origin API proxy, and the DR dashboard's three endpoints through it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from autograph.stack.lifecycle import Stack

DR_ENDPOINTS = ["/api/admin/dr/status", "/api/admin/backups", "/api/admin/alerts"]


@pytest.fixture(scope="module")
def frontend(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("frontend"), timeout=60,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def admin_key(app_stack: Stack) -> dict[str, str]:
    key = (app_stack.settings.secrets_dir / "admin-api-key").read_text().strip()
    return {"Authorization": f"Bearer {key}"}


def test_index_page_has_the_three_pages_and_a_strict_policy(frontend: httpx.Client) -> None:
    page = frontend.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert all(f'id="page-{name}"' in page.text for name in ("login", "diagrams", "dr"))
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"


SCRIPTS = ["main.js", "api.js", "diagrams.js", "console.js", "console_actions.js"]


def test_scripts_and_style_are_served_and_write_no_html(frontend: httpx.Client) -> None:
    text = ""
    for name in SCRIPTS:
        script = frontend.get(f"/static/{name}")
        assert script.status_code == 200, name
        assert script.headers["content-type"].startswith("text/javascript")
        assert not any(sink in script.text for sink in (".innerHTML", ".outerHTML",
                                                        "insertAdjacentHTML", "eval(",
                                                        "sessionStorage", "localStorage"))
        text += script.text
    assert all(path in text for path in DR_ENDPOINTS)
    assert frontend.get("/static/style.css").status_code == 200


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e%2fapp.py",
                                  "/static/app.py", "/static/app.js", "/static/secrets"])
def test_only_the_ui_files_are_served(frontend: httpx.Client, path: str) -> None:
    assert frontend.get(path).status_code == 404


def test_login_and_diagrams_work_through_the_proxy(frontend: httpx.Client) -> None:
    frontend.post("/api/auth/register", json={"email": "p3-ui@example.com",
                                              "password": "Sturdy-Pass-42"})
    login = frontend.post("/api/auth/login", json={"email": "p3-ui@example.com",
                                                   "password": "Sturdy-Pass-42"})
    assert login.status_code == 200, login.text
    user = {"Authorization": f"Bearer {login.json()['access_token']}"}
    created = frontend.post("/api/diagrams", json={"name": "From the UI"}, headers=user)
    assert created.status_code == 201
    listed = frontend.get("/api/diagrams", headers=user).json()
    assert created.json()["id"] in {d["id"] for d in listed["diagrams"]}


@pytest.mark.parametrize("path", DR_ENDPOINTS)
def test_dr_dashboard_endpoints_answer_through_the_frontend_like_the_gateway(
        app_stack: Stack, frontend: httpx.Client, admin_key: dict[str, str], path: str) -> None:
    direct = httpx.get(app_stack.settings.service_url("gateway") + path, headers=admin_key,
                       timeout=60, trust_env=False)
    proxied = frontend.get(path, headers=admin_key)
    assert proxied.status_code == direct.status_code
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert frontend.get(path).status_code == 401
