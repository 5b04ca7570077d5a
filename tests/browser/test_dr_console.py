"""The DR console in chromium, as an operator uses it: the key exchanged for a session (and
kept nowhere in the page), backups of every kind, create and verify with progress, pin, a typed
confirmation before restoring a bucket into a new one, an alert acknowledged, a drill report
opened from the drill table, the audit log, log out."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack
from stackutil import settings_env

KINDS = ("database", "bucket", "basebackup", "snapshot")


@pytest.fixture(scope="module")
def operator_world(app_stack: Stack, gateway: httpx.Client, admin_key: str) -> Iterator[str]:
    """A user's diagrams (objects in the diagrams bucket), a base backup, a real alert (a backup
    of a missing bucket fails) and a drill in the history with its report."""
    email = f"ops-{secrets.token_hex(4)}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"}
                         ).json()["access_token"]
    for i in range(3):
        made = gateway.post("/api/diagrams", headers={"Authorization": f"Bearer {token}"},
                            json={"name": f"ops {i}", "canvas": {"nodes": [{"id": str(i)}]}})
        assert made.status_code == 201, made.text
    PhysicalBackupManager(app_stack.settings, app_stack.creds).create(None)
    key = {"Authorization": f"Bearer {admin_key}"}
    # The API refuses a missing bucket before starting anything (404, no alert); the CLI runs the
    # backup, which fails and is journaled: the gateway's monitor raises backup_failed from it.
    failed = subprocess.run([sys.executable, "-m", "autograph.cli.main", "backup", "objects",
                             "create", "missing-ui-bucket"], capture_output=True, text=True,
                            env={**os.environ, **settings_env(app_stack.settings)}, timeout=120)
    assert failed.returncode != 0, failed.stdout
    assert gateway.post("/api/admin/minio/backup/create?bucket=missing-ui-bucket",
                        headers=key).status_code == 404
    folder = app_stack.settings.dr_dir / "reports" / "20261001T000000Z-complete"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text("<!doctype html><title>Drill report</title>"
                                        "<h1>DR drill: complete</h1><p>RTO 41.2 s</p>")
    line = {"scenario": "complete", "mode": "sandbox", "started_at": "2026-10-01T00:00:00Z",
            "finished_at": "2026-10-01T00:02:00Z", "passed": True, "rto_seconds": 41.2,
            "rpo_seconds": 0.8, "report": str(folder)}
    with open(app_stack.settings.dr_dir / "drills.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\n")
    yield "missing-ui-bucket"


def _open_console(page: Page, admin_key: str) -> None:
    page.goto("/#/dr")
    expect(page.locator("#operator-box")).to_have_attribute("open", "")
    page.fill("#apikey-form input[name=key]", admin_key)
    page.click("#apikey-form button")
    expect(page.locator("#page-dr")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("admin session")
    expect(page.locator("#dr-tiles .tile").first).to_be_visible(timeout=90_000)
    expect(page.locator("#dr-backups tbody tr").first).to_be_visible(timeout=90_000)


def _job_succeeds(page: Page, label: str) -> None:
    job = page.locator("#dr-jobs li", has_text=label).first
    expect(job.locator("span")).to_contain_text("succeeded", timeout=120_000)


def _row(page: Page, kind: str, text: str = "") -> object:
    rows = page.locator(f"#dr-backups tbody tr[data-kind={kind}]")
    return rows.filter(has_text=text).first if text else rows.first


def test_operator_console_end_to_end(page: Page, admin_key: str, app_stack: Stack,
                                     operator_world: str) -> None:
    _open_console(page, admin_key)
    held = page.evaluate("JSON.stringify([Object.entries(sessionStorage), "
                         "Object.entries(localStorage), document.cookie, document.body.innerText])")
    assert admin_key not in held and "ags_" not in held

    tiles = page.locator("#dr-tiles .tile")
    expect(tiles.filter(has_text=re.compile(r"^Database "))).to_have_count(1)
    expect(tiles.filter(has_text="WAL stream")).to_have_count(1)
    expect(tiles.filter(has_text="Bucket diagrams")).to_have_count(1)

    page.click("#act-db-create")
    page.select_option("#act-bucket", "diagrams")
    page.click("#act-snapshot-create")  # two jobs at once: both stay listed with their progress
    _job_succeeds(page, "back up database")
    _job_succeeds(page, "snapshot diagrams")
    page.click("#act-bucket-create")
    _job_succeeds(page, "archive diagrams")
    expect(page.locator("#dr-jobs li")).to_have_count(3)
    for kind in KINDS:
        expect(page.locator(f"#dr-backups tbody tr[data-kind={kind}]").first).to_be_visible()
    page.select_option("#f-kind", "snapshot")
    kinds = page.locator("#dr-backups tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.kind)")
    assert kinds and set(kinds) == {"snapshot"}
    page.select_option("#f-kind", "")

    dump = page.locator("#dr-backups tbody tr[data-kind=database]").first
    name = dump.get_attribute("data-name")
    dump.get_by_role("button", name="Verify").click()
    _job_succeeds(page, f"verify {name}")
    dump = page.locator(f"#dr-backups tbody tr[data-name='{name}']")
    expect(dump.locator("td").nth(5)).to_have_text("passed")
    dump.get_by_role("button", name="Pin").click()
    expect(dump.locator("td").nth(6)).to_contain_text("pinned", timeout=90_000)  # slow when busy
    expect(dump.get_by_role("button", name="Unpin")).to_be_visible()

    archive = page.locator("#dr-backups tbody tr[data-kind=bucket]").filter(
        has_text="diagrams").first
    archive_name = archive.get_attribute("data-name")
    archive.get_by_role("button", name="Restore…").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("existing keys are skipped")
    page.fill("#confirm-target", "restored-ui")
    page.fill("#confirm-input", "restored-u")
    expect(page.locator("#confirm-ok")).to_be_disabled()
    page.fill("#confirm-input", "restored-ui")
    expect(page.locator("#confirm-ok")).to_be_enabled()
    page.click("#confirm-ok")
    _job_succeeds(page, f"restore {archive_name} → restored-ui")
    client = app_client(app_stack.settings, app_stack.creds)
    keys = lambda bucket: sorted(o["Key"] for o in client.list_objects_v2(  # noqa: E731
        Bucket=bucket).get("Contents", []))
    assert keys("restored-ui") and keys("restored-ui") == keys("diagrams")

    alert = page.locator("#dr-alerts li.alert", has_text=operator_world)
    alert.get_by_role("button", name="Silence 1 h").click()
    expect(alert).to_contain_text("acknowledged by admin session")
    expect(alert).to_contain_text("silenced until")

    drill = page.locator("#dr-drills tbody tr", has_text="complete")
    expect(drill).to_contain_text("41 s")
    with page.context.expect_page() as popup:
        drill.get_by_role("link", name="report").click()
    report = popup.value
    expect(report.locator("h1")).to_have_text("DR drill: complete")

    page.click("#dr-refresh")
    audit = page.locator("#dr-audit tbody")
    expect(audit).to_contain_text("POST /api/admin/backup/pin")
    expect(audit).to_contain_text("POST /api/admin/alerts/ack")
    expect(audit).to_contain_text("job minio.backup.restore")

    page.click("#logout")
    expect(page.locator("#page-login")).to_be_visible()
    page.goto("/#/dr")
    expect(page.locator("#apikey-form")).to_be_visible()


def test_a_wrong_key_is_refused_and_a_reload_keeps_the_session(page: Page, admin_key: str,
                                                               errors: list[str]) -> None:
    errors.expect("Failed to load resource.*401")  # type: ignore[attr-defined]
    page.goto("/#/dr")
    page.fill("#apikey-form input[name=key]", "not-the-key")
    page.click("#apikey-form button")
    expect(page.locator("#flash")).to_contain_text("The key was refused")
    _open_console(page, admin_key)
    page.reload()
    expect(page.locator("#page-dr")).to_be_visible()
    expect(page.locator("#dr-backups tbody tr").first).to_be_visible(timeout=90_000)


def test_the_console_fits_390_pixels(page: Page, admin_key: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    _open_console(page, admin_key)
    expect(page.locator("#dr-backups tbody tr").first).to_be_visible(timeout=90_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def _cli(app_stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autograph.cli.main", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **settings_env(app_stack.settings)})


def _no_drill_left(gateway: httpx.Client, admin_key: str) -> None:
    """Stop a drill this test started, and wait until it has ended (never leave one running)."""
    key = {"Authorization": f"Bearer {admin_key}"}
    gateway.delete("/api/admin/drills/run", headers=key)  # 404 when none runs: fine
    for _ in range(240):
        if not gateway.get("/api/admin/drills/run", headers=key).json()["running"]:
            return
        time.sleep(1)
    raise AssertionError("a drill is still running")


def test_overview_tiles_for_offsite_and_restore_tests(page: Page, admin_key: str,
                                                      app_stack: Stack,
                                                      operator_world: str) -> None:
    made = _cli(app_stack, "backup", "db", "create")
    assert made.returncode == 0, made.stderr
    proved = _cli(app_stack, "dr", "prove", "database")
    assert proved.returncode == 0, proved.stderr
    _open_console(page, admin_key)
    offsite = page.locator("#dr-tiles .tile", has_text="Off-site copy")
    expect(offsite).to_contain_text("not configured")
    expect(offsite).to_contain_text("every copy dies with this machine")
    expect(offsite).to_have_attribute("data-level", "warning")
    proofs = page.locator("#dr-tiles .tile", has_text="Restore tests")
    database = proofs.locator("p[data-kind=database]")
    expect(database).to_contain_text("database: proven")
    expect(database).to_have_attribute("data-level", "ok")
    base = proofs.locator("p[data-kind=basebackup]")
    expect(base).to_have_text("basebackup: never proven")
    expect(base).to_have_attribute("data-level", "critical")
    expect(proofs).to_have_attribute("data-level", "critical")  # the worst kind colours it
    expect(proofs).to_contain_text("(not scheduled here)")


def test_drill_chart_and_a_sandbox_drill_run_and_stopped(page: Page, admin_key: str,
                                                         gateway: httpx.Client,
                                                         operator_world: str) -> None:
    _open_console(page, admin_key)
    rto = page.locator("#dr-drill-chart figure[data-metric=rto_seconds]")
    expect(rto.locator("circle.point").first).to_be_attached()
    titles = rto.locator("circle.point title").all_text_contents()
    assert any("RTO 41 s (complete, passed)" in t for t in titles), titles
    expect(rto.locator("line.target")).to_have_count(1)
    expect(rto.locator("figcaption")).to_contain_text("target 1 h")
    rpo = page.locator("#dr-drill-chart figure[data-metric=rpo_seconds]")
    expect(rpo.locator("figcaption")).to_contain_text("target 5 min")
    assert any("RPO 1 s" in t for t in rpo.locator("circle.point title").all_text_contents())

    try:
        page.click("#dr-drill-run")
        dialog = page.locator("#confirm")
        expect(dialog).to_contain_text("Production is not touched")
        expect(page.locator("#confirm-ok")).to_be_disabled()
        page.fill("#confirm-input", "drill")
        page.click("#confirm-ok")
        job = page.locator("#dr-jobs li", has_text="sandbox drill").first
        steps = re.compile(r"sandbox in |starting |healthy|load_dataset|start_writer")
        expect(job.locator("span")).to_contain_text(steps, timeout=120_000)  # the drill's own
        assert float(job.locator("progress").get_attribute("value") or 0) > 0
        expect(page.locator("#dr-drill-running")).to_contain_text("A sandbox drill is running")
        expect(page.locator("#dr-drill-run")).to_be_disabled()
        page.click("#dr-drill-stop")
        expect(page.locator("#flash")).to_contain_text("Stopping the drill")
        expect(job.locator("span")).to_contain_text("failed: drill stopped by request",
                                                    timeout=180_000)
        expect(page.locator("#dr-drill-run")).to_be_enabled(timeout=30_000)
    finally:
        _no_drill_left(gateway, admin_key)
    page.click("#dr-refresh")
    audit = page.locator("#dr-audit tbody")
    expect(audit).to_contain_text("POST /api/admin/drills/run")
    expect(audit).to_contain_text("DELETE /api/admin/drills/run")


def test_the_recovery_panel_is_live_and_says_when_it_is_not(page: Page, admin_key: str,
                                                            app_stack: Stack,
                                                            errors: list[str]) -> None:
    from autograph.dr.recovery import live

    errors.expect(r"ERR_FAILED \(http://[^)]*/api/admin/recovery/live\)")  # type: ignore[attr-defined]

    path = live.state_path(app_stack.settings.dr_dir)
    runner = subprocess.Popen(["sleep", "300"])  # stands for the recovery's process
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "operation": "recovery", "params": {"scenario": "objects"},
        "started_at": "2026-12-02T09:00:00Z", "runner_pid": runner.pid,
        "planned": ["assess", "restore_buckets", "verify"],
        "done": [{"name": "assess", "status": "passed", "detail": "<img src=x onerror=alert(1)>",
                  "started_at": "2026-12-02T09:00:00Z", "duration_seconds": 1.5}],
        "current": "restore_buckets", "current_started_at": "2026-12-02T09:00:02Z"}))
    try:
        page.goto("/#/dr")
        page.fill("#apikey-form input[name=key]", admin_key)
        page.click("#apikey-form button")
        expect(page.locator("#page-dr")).to_be_visible()
        state = page.locator("#dr-recovery-state")
        expect(state).to_contain_text("Recovery (objects) running since")
        steps = page.locator("#dr-recovery-steps")
        expect(steps.locator("tr[data-step=restore_buckets]")).to_contain_text("running")
        expect(steps.locator("tr[data-step=assess]")).to_contain_text(
            "<img src=x onerror=alert(1)>")  # shown as text
        runner.kill()
        runner.wait()
        expect(state).to_contain_text("Interrupted recovery", timeout=15_000)
        page.route("**/api/admin/recovery/live", lambda route: route.abort())
        page.evaluate("document.getElementById('dr-refresh').click()")
        expect(state).to_contain_text("unreachable", timeout=15_000)
        expect(state).to_contain_text("NOT live")
        expect(steps).to_have_class(re.compile("stale"))
    finally:
        runner.kill()
        path.unlink(missing_ok=True)
