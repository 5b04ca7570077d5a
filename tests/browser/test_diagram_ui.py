"""The diagram UI in chromium: register → log in → create → edit → versions → export → log out;
error messages for a network failure, 5xx, non-JSON and 401; no double create; an XSS name shown
as text; no secret in web storage; a layout that fits 390 px."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import httpx
from playwright.sync_api import Page, Request, expect

PASSWORD = "Sturdy-Pass-42"
CANVAS = {"nodes": [{"id": "u", "label": "User"}, {"id": "a", "label": "API"}],
          "edges": [{"source": "u", "target": "a"}]}
MAGIC = {"svg": b"<svg", "png": b"\x89PNG", "pdf": b"%PDF"}


def _register_and_log_in(page: Page) -> str:
    email = f"ui-{secrets.token_hex(4)}@example.com"
    page.goto("/")
    page.get_by_text("Create an account").click()
    page.fill("#register-form input[name=email]", email)
    page.fill("#register-form input[name=password]", PASSWORD)
    page.click("#register-form button")
    expect(page.locator("#flash")).to_have_text("Account created: log in.")
    page.fill("#login-form input[name=email]", email)
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button")
    expect(page.locator("#page-diagrams")).to_be_visible()
    expect(page.locator("#who")).to_have_text(email)
    return email


def _storage(page: Page) -> str:
    return page.evaluate("JSON.stringify([Object.entries(sessionStorage), "
                         "Object.entries(localStorage), document.cookie])")


def test_register_log_in_create_edit_versions_export_and_log_out(
        page: Page, gateway: httpx.Client, tmp_path: Path) -> None:
    tokens: list[str] = []

    def remember(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer ") and request.url.endswith("/api/diagrams"):
            tokens.append(auth.removeprefix("Bearer "))

    page.on("request", remember)
    _register_and_log_in(page)
    expect(page.locator("#diagram-empty")).to_be_visible()

    page.fill("#create-form input[name=name]", "Checkout flow")
    page.dblclick("#create-form button")  # a double click must create one diagram
    expect(page.locator("#page-editor")).to_be_visible()
    expect(page.locator("#editor-title")).to_have_text("Checkout flow (version 1)")

    page.fill("#canvas-json", '{"nodes": [{"id": "u"}], "edges": [{"source": "u", "target": "x"}]}')
    page.click("#canvas-save")
    expect(page.locator("#canvas-problem")).to_contain_text("Edge 1 must join two existing")
    expect(page.locator("#editor-title")).to_have_text("Checkout flow (version 1)")
    page.fill("#canvas-json", json.dumps(CANVAS))
    page.click("#canvas-save")
    expect(page.locator("#editor-title")).to_have_text("Checkout flow (version 2)")
    expect(page.locator("#preview-img")).to_have_attribute("src", re.compile(r"^blob:"))

    page.fill("#rename-form input[name=name]", "Checkout flow v2")
    page.click("#rename-form button")
    expect(page.locator("#editor-title")).to_have_text("Checkout flow v2 (version 3)")
    rows = page.locator("#version-table tbody tr")
    expect(rows).to_have_count(3)
    rows.filter(has_text="Checkout flow").last.get_by_role("button", name="View").click()
    expect(page.locator("#version-shown")).to_contain_text("version 1")
    assert json.loads(page.input_value("#canvas-json")) == {}
    rows.nth(1).get_by_role("button", name="Restore").click()  # version 2: the CANVAS
    expect(page.locator("#editor-title")).to_have_text("Checkout flow (version 4)")
    assert json.loads(page.input_value("#canvas-json")) == CANVAS

    for fmt, magic in MAGIC.items():
        with page.expect_download() as info:
            page.click(f"button.export[data-format={fmt}]")
        download = info.value
        assert download.suggested_filename == f"Checkout flow-v4.{fmt}"
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        assert magic in target.read_bytes()[:200], fmt

    page.get_by_role("link", name="← All diagrams").click()
    expect(page.locator("#diagram-table tbody tr")).to_have_count(1)
    assert "secret" not in _storage(page) and tokens[0] not in _storage(page)

    page.click("#logout")
    expect(page.locator("#page-login")).to_be_visible()
    assert gateway.get("/api/diagrams", headers={
        "Authorization": f"Bearer {tokens[0]}"}).status_code == 401


def test_an_xss_name_renders_as_text(page: Page) -> None:
    _register_and_log_in(page)
    name = '<img src=x onerror="window.__xss=1">'
    page.fill("#create-form input[name=name]", name)
    page.click("#create-form button")
    expect(page.locator("#editor-title")).to_have_text(name + " (version 1)")
    page.goto("/#/diagrams")
    expect(page.locator("#diagram-table tbody td").first).to_have_text(name)
    assert page.locator("#diagram-table img, #editor-title img").count() == 0
    assert page.evaluate("window.__xss") is None


def test_register_wants_the_servers_ten_characters(page: Page) -> None:
    page.goto("/")
    page.get_by_text("Create an account").click()
    field = page.locator("#register-form input[name=password]")
    assert field.get_attribute("minlength") == "10"
    page.fill("#register-form input[name=email]", "short@example.com")
    field.fill("Nine-char")
    page.click("#register-form button")
    assert field.evaluate("f => f.validity.tooShort") is True
    expect(page.locator("#flash")).to_be_hidden()


def test_failures_get_clear_messages_and_401_goes_back_to_login(page: Page,
                                                                  errors: list[str]) -> None:
    errors.expect("Failed to load resource")  # type: ignore[attr-defined]
    _register_and_log_in(page)
    answers = [
        (lambda route: route.abort("connectionrefused"),
         "Network error: the server could not be reached"),
        (lambda route: route.fulfill(status=502, content_type="text/html",
                                     body="<h1>Bad gateway</h1>"),
         "Server error (HTTP 502): the server sent a non-JSON answer"),
        (lambda route: route.fulfill(status=503, content_type="application/json",
                                     body='{"detail": "the diagram service is unavailable"}'),
         "Server error (HTTP 503): the diagram service is unavailable"),
        (lambda route: route.fulfill(status=200, content_type="application/json", body="{oops"),
         "unreadable answer"),
    ]
    for handler, message in answers:
        page.route("**/api/diagrams", handler)
        page.click("#nav-diagrams")
        page.evaluate("window.dispatchEvent(new HashChangeEvent('hashchange'))")
        expect(page.locator("#flash")).to_contain_text(message)
        page.unroute("**/api/diagrams")
    page.route("**/api/diagrams", lambda route: route.fulfill(
        status=401, content_type="application/json", body='{"detail": "invalid or expired token"}'))
    page.evaluate("window.dispatchEvent(new HashChangeEvent('hashchange'))")
    expect(page.locator("#page-login")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("Your session has ended")


def test_pages_fit_a_390_pixel_screen(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    expect(page.locator("#page-login")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _register_and_log_in(page)
    page.fill("#create-form input[name=name]", "A rather long diagram name for a small phone")
    page.click("#create-form button")
    expect(page.locator("#page-editor")).to_be_visible()
    expect(page.locator("#version-table tbody tr")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto("/#/diagrams")
    expect(page.locator("#diagram-table tbody tr")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
