"""The plan's checklist item "Take screenshots": the DR console and one user's diagram editor,
in Debian's chromium driven by Playwright, saved as PNGs in the drill's report folder.

Screenshots are evidence, never a criterion: a missing browser or a failed shot becomes a note.
The browser runs in a child process (``python -m autograph.dr.drill.screenshots``), which
reads its request, secrets included, from stdin and answers on stdout: Playwright's sync API
refuses to start inside a running asyncio loop, and the child is killed when it overruns.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from autograph.dr.drill.models import Moment, Screenshot

CHROMIUM = "/usr/bin/chromium"
SHOT_TIMEOUT_SECONDS = 25.0   # each page: its actions and the shot
TOTAL_TIMEOUT_SECONDS = 58.0  # the child process, browser start included
VIEWPORT = {"width": 1280, "height": 900}
PREVIEW_WAIT_MS = 8_000
PREVIEW_DRAWN = ("() => { const img = document.querySelector('#preview-img'); return !!img && "
                 "img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0; }")


class ShotRequest(BaseModel):
    """What to photograph, and as whom. The secrets never leave through argv or logs."""

    frontend_url: str
    folder: Path
    moment: Moment
    admin_key: str = Field(repr=False)
    email: str | None = None
    password: str | None = Field(default=None, repr=False)
    diagram_id: str | None = None
    chromium: str = CHROMIUM
    timeout_seconds: float = SHOT_TIMEOUT_SECONDS


class ShotResult(BaseModel):
    """The screenshots written, and a note for each one that was not."""

    screenshots: list[Screenshot] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line for the drill's step record."""
        taken = ", ".join(s.file for s in self.screenshots) or "no screenshots"
        return f"{taken}" + (f" ({len(self.notes)} not taken)" if self.notes else "")


def default_chromium() -> str:
    """``AUTOGRAPH_CHROMIUM``, else Debian's chromium."""
    return os.environ.get("AUTOGRAPH_CHROMIUM", CHROMIUM)


def take_screenshots(request: ShotRequest,
                     total_timeout: float = TOTAL_TIMEOUT_SECONDS) -> ShotResult:
    """Photograph the console and the diagram in a child process; never raises."""
    when = request.moment.replace("_", " ")
    if not Path(request.chromium).is_file():
        return ShotResult(notes=[f"no screenshots {when}: chromium is not installed "
                                 f"({request.chromium} missing)"])
    if importlib.util.find_spec("playwright") is None:
        return ShotResult(notes=[f"no screenshots {when}: playwright is not installed "
                                 "(a dev extra: scripts/install.sh)"])
    request.folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-m", "autograph.dr.drill.screenshots"],
                              input=request.model_dump_json(), capture_output=True,
                              text=True, timeout=total_timeout, check=False)
    except subprocess.TimeoutExpired:
        return ShotResult(notes=[f"no screenshots {when}: the browser overran "
                                 f"{total_timeout:g} s"])
    try:
        return ShotResult.model_validate_json(done.stdout)
    except ValidationError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return ShotResult(notes=[f"no screenshots {when}: the browser process failed "
                                 f"(exit {done.returncode}: {last[:300]})"])


# The child process -------------------------------------------------------------------------

def shoot(request: ShotRequest) -> ShotResult:
    """In this process: start chromium, photograph each page; a failed page is a note."""
    from playwright.sync_api import sync_playwright

    result = ShotResult()
    user = bool(request.email and request.password and request.diagram_id)
    pages: list[tuple[Literal["dr_console", "diagram"], Any]] = [("dr_console", _console)]
    pages += [("diagram", _diagram)] if user else []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=request.chromium,
                                         args=["--no-sandbox"],
                                         timeout=request.timeout_seconds * 1000)
        try:
            for name, walk in pages:
                _one(browser, request, name, walk, result)
        finally:
            browser.close()
    if not user:
        result.notes.append(f"no diagram screenshot {request.moment.replace('_', ' ')}: "
                            "the drill has no user diagram")
    return result


def _one(browser: Any, request: ShotRequest, name: Literal["dr_console", "diagram"],
         walk: Any, result: ShotResult) -> None:
    """Open a fresh context, walk to the page, save it full-page."""
    file = f"{request.moment.replace('_', '-')}-{name.replace('_', '-')}.png"
    what = "the DR console" if name == "dr_console" else "a user's diagram editor"
    context = browser.new_context(base_url=request.frontend_url, viewport=VIEWPORT)
    context.set_default_timeout(request.timeout_seconds * 1000)
    try:
        page = context.new_page()
        walk(page, request)
        page.screenshot(path=str(request.folder / file), full_page=True)
        result.screenshots.append(Screenshot(
            moment=request.moment, page=name, file=file,
            alt=f"{what} {request.moment.replace('_', ' ')}"))
    except Exception as exc:  # evidence, not a criterion: the report notes it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        result.notes.append(f"screenshot of {what} {request.moment.replace('_', ' ')} "
                            f"failed: {first[:300]}")
    finally:
        context.close()


def _console(page: Any, request: ShotRequest) -> None:
    """The operator form filled with the admin key, then the console's tiles."""
    page.goto("/#/dr")
    page.fill("#apikey-form input[name=key]", request.admin_key)
    page.click("#apikey-form button")
    page.locator("#dr-tiles .tile").first.wait_for(state="visible")


def _diagram(page: Any, request: ShotRequest) -> None:
    """Log in as the user, open the diagram's editor, wait for its title."""
    page.goto("/")
    page.fill("#login-form input[name=email]", request.email)
    page.fill("#login-form input[name=password]", request.password)
    page.click("#login-form button")
    page.locator("#page-diagrams").wait_for(state="visible")
    page.evaluate("id => { location.hash = '#/diagram/' + encodeURIComponent(id); }",
                  request.diagram_id)
    page.locator("#page-editor").wait_for(state="visible")
    page.wait_for_function(
        "() => /version/.test(document.querySelector('#editor-title').textContent)")
    from playwright.sync_api import Error as PlaywrightError

    with contextlib.suppress(PlaywrightError):  # a preview still drawing is shot as it is
        page.wait_for_function(PREVIEW_DRAWN, timeout=PREVIEW_WAIT_MS)


def main() -> int:
    """Read a ShotRequest on stdin, write the ShotResult on stdout."""
    request = ShotRequest.model_validate_json(sys.stdin.read())
    try:
        result = shoot(request)
    except Exception as exc:  # the browser did not start: a note, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        result = ShotResult(notes=[f"no screenshots {request.moment.replace('_', ' ')}: "
                                   f"the browser did not start ({first[:300]})"])
    sys.stdout.write(result.model_dump_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
