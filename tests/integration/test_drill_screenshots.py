"""The drill's screenshots (the plan's "Take screenshots") against the session's app stack, in
Debian's chromium: PNGs of the DR console and a user's diagram editor in the report folder,
embedded in report.html and listed in report.json/report.md; no browser gives a note."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import httpx

from autograph.dr.drill.models import DrillReport
from autograph.dr.drill.report import write_report
from autograph.dr.drill.screenshots import ShotRequest, default_chromium, take_screenshots
from autograph.stack.lifecycle import Stack

PASSWORD = "Sturdy-Pass-42"


def _user_with_a_diagram(stack: Stack) -> tuple[str, str]:
    email = f"shot-{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as gateway:
        assert gateway.post("/api/auth/register",
                            json={"email": email, "password": PASSWORD}).status_code == 201
        token = gateway.post("/api/auth/login", json={"email": email, "password": PASSWORD}
                             ).json()["access_token"]
        made = gateway.post("/api/diagrams", headers={"Authorization": f"Bearer {token}"},
                            json={"name": "Drill shot", "canvas": {"nodes": [{"id": "a"}]}})
        assert made.status_code == 201, made.text
        return email, str(made.json()["id"])


def test_screenshots_are_written_and_embedded_in_the_report(app_stack: Stack,
                                                            tmp_path: Path) -> None:
    email, diagram = _user_with_a_diagram(app_stack)
    started = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    folder = tmp_path / "reports" / "20261202T100000Z-database"
    result = take_screenshots(ShotRequest(
        frontend_url=app_stack.settings.service_url("frontend"), folder=folder,
        moment="before_failure", admin_key=app_stack.creds.admin_api_key, email=email,
        password=PASSWORD, diagram_id=diagram, chromium=default_chromium()))

    assert result.notes == []
    assert [(s.page, s.file) for s in result.screenshots] == [
        ("dr_console", "before-failure-dr-console.png"),
        ("diagram", "before-failure-diagram.png")]
    for shot in result.screenshots:
        png = (folder / shot.file).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, shot.file
    assert app_stack.creds.admin_api_key not in repr(ShotRequest(
        frontend_url="x", folder=folder, moment="after_recovery",
        admin_key=app_stack.creds.admin_api_key))

    report = DrillReport(scenario="database", started_at=started, finished_at=started,
                         screenshots=result.screenshots, notes=["a note about evidence"])
    written = write_report(report, tmp_path)
    assert written == folder
    page = (folder / "report.html").read_text()
    assert ("<img src='before-failure-dr-console.png' alt='the DR console before failure'"
            in page)
    assert "src='before-failure-diagram.png' alt='a user&#x27;s diagram editor" in page
    assert "<li>a note about evidence</li>" in page
    listed = json.loads((folder / "report.json").read_text())["screenshots"]
    assert [s["file"] for s in listed] == ["before-failure-dr-console.png",
                                           "before-failure-diagram.png"]
    assert "![the DR console before failure](before-failure-dr-console.png)" in (
        folder / "report.md").read_text()


def test_a_missing_chromium_gives_a_note_not_an_exception(app_stack: Stack,
                                                          tmp_path: Path) -> None:
    result = take_screenshots(ShotRequest(
        frontend_url=app_stack.settings.service_url("frontend"), folder=tmp_path,
        moment="after_recovery", admin_key=app_stack.creds.admin_api_key,
        chromium=str(tmp_path / "no-chromium")))

    assert result.screenshots == []
    assert result.notes == [f"no screenshots after recovery: chromium is not installed "
                            f"({tmp_path / 'no-chromium'} missing)"]
    assert list(tmp_path.iterdir()) == []


def test_a_page_that_never_loads_gives_a_note_within_the_timeout(app_stack: Stack,
                                                                 tmp_path: Path) -> None:
    result = take_screenshots(ShotRequest(
        frontend_url=app_stack.settings.service_url("gateway"), folder=tmp_path,
        moment="after_recovery", admin_key="not-the-key", timeout_seconds=3,
        chromium=default_chromium()))

    assert result.screenshots == []
    assert len(result.notes) == 2
    assert result.notes[0].startswith("screenshot of the DR console after recovery failed:")
    assert result.notes[1] == ("no diagram screenshot after recovery: the drill has no user "
                               "diagram")
