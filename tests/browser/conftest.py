"""Browser fixtures: Debian's chromium driven by Playwright, against the session's app stack.

Each test gets a fresh context (no cookies, no storage) and fails if the page logged a console
error or threw; a test that fails leaves a screenshot of its page in ``test-artifacts/browser``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from autograph.stack.lifecycle import Stack

CHROMIUM = os.environ.get("AUTOGRAPH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


# Module scope, not session: while Playwright's sync driver is open its event loop runs on the
# main thread, and every later test that calls ``asyncio.run`` would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/install.sh (apt chromium)"
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def base_url(app_stack: Stack) -> str:
    return app_stack.settings.service_url("frontend")


@pytest.fixture(scope="session")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=120,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def admin_key(app_stack: Stack) -> str:
    return app_stack.creds.admin_api_key


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


class PageErrors(list[str]):
    """Console errors and uncaught exceptions of a page; ``expect`` allows a known one."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: list[re.Pattern[str]] = []

    def expect(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser: Browser, base_url: str, errors: PageErrors,
         request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    context.on("console", on_console)
    context.on("weberror", lambda error: errors.append(f"page error: {error.error}"))
    yield tab
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, open_page in enumerate(context.pages):
            open_page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{i}.png"),
                                 full_page=True)
    context.close()
    if failed is not None and failed.passed:
        assert not errors.unexpected(), errors.unexpected()
