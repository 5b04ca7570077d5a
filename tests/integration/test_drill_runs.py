"""Running a sandbox drill from the admin API on the real gateway: refusals (401 without a
token, 403 for a user, 409 while a drill or restore test holds the proof lock), and a started
drill that shows progress, refuses a second one and stops cleanly on request: its job fails as
stopped, its sandbox and the processes in it are gone, the history is untouched."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from autograph.dr.ops import locks
from autograph.stack.lifecycle import Stack

DRILL_STEP = re.compile(r"sandbox in |starting |\S+ healthy|load_dataset|start_writer|backup_round")


def _processes_under(folder: str) -> list[str]:
    """Command lines of running processes that name ``folder`` (the sandbox and its off-site
    S3 server, whose folder is named after it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if folder in line:
            found.append(f"{entry.name}: {line[:200]}")
    return found


def _job(gateway: httpx.Client, admin: dict[str, str], job_id: str) -> dict[str, object]:
    answer = gateway.get(f"/api/admin/jobs/{job_id}", headers=admin)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_drill_is_refused_without_admin_rights_or_while_the_proof_lock_is_held(
        gateway: httpx.Client, user: dict[str, str], admin: dict[str, str],
        app_stack: Stack) -> None:
    assert gateway.post("/api/admin/drills/run").status_code == 401
    assert gateway.post("/api/admin/drills/run", headers=user).status_code == 403
    assert gateway.delete("/api/admin/drills/run", headers=user).status_code == 403
    assert gateway.get("/api/admin/drills/run", headers=user).status_code == 403
    with locks.acquire(app_stack.settings.backups_dir, "proof", "restore tests"):
        refused = gateway.post("/api/admin/drills/run", headers=admin)
        assert refused.status_code == 409, refused.text
        assert "restore tests is already running" in refused.json()["detail"]
        now = gateway.get("/api/admin/drills/run", headers=admin).json()
        assert now["running"] and now["operation"] == "restore tests" and not now["is_drill"]
        stop = gateway.delete("/api/admin/drills/run", headers=admin)
        assert stop.status_code == 409 and "not a drill started by hand" in stop.json()["detail"]
    assert gateway.get("/api/admin/drills/run", headers=admin).json() == {
        "running": False, "operation": None, "started_by": None, "since": None, "pid": None,
        "is_drill": False, "stop_requested": False}
    missing = gateway.delete("/api/admin/drills/run", headers=admin)
    assert missing.status_code == 404 and missing.json()["detail"] == "no drill is running"
    audit = gateway.get("/api/admin/audit?limit=20", headers=admin).json()
    refusal = next(e for e in audit if e["action"] == "POST /api/admin/drills/run")
    assert refusal["status"] == 409 and refusal["result"] == "failed"
    assert "already running" in refusal["detail"]


def test_a_started_drill_shows_progress_refuses_a_second_and_stops_cleanly(
        gateway: httpx.Client, admin: dict[str, str], app_stack: Stack) -> None:
    history = app_stack.settings.dr_dir / "drills.jsonl"
    before = history.read_text() if history.exists() else ""
    started = gateway.post("/api/admin/drills/run", headers=admin)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    try:
        running = gateway.get("/api/admin/drills/run", headers=admin).json()
        assert running["running"] and running["is_drill"]
        assert running["started_by"] == "admin-api-key"
        second = gateway.post("/api/admin/drills/run", headers=admin)
        assert second.status_code == 409
        assert "sandbox drill is already running" in second.json()["detail"]
        deadline = time.monotonic() + 120
        job = _job(gateway, admin, job_id)
        while not DRILL_STEP.match(str(job["step"])):  # a line of the drill's own progress
            assert job["status"] == "running", f"{job['error']} (step {job['step']})"
            assert time.monotonic() < deadline, f"no progress: {job}"
            time.sleep(0.3)
            job = _job(gateway, admin, job_id)
        assert isinstance(job["progress"], float) and 0 < job["progress"] < 1
    finally:
        stop = gateway.delete("/api/admin/drills/run", headers=admin)
    assert stop.status_code == 200, stop.text
    assert stop.json()["stop_requested"]
    deadline = time.monotonic() + 180
    while (job := _job(gateway, admin, job_id))["status"] == "running":
        assert time.monotonic() < deadline, f"the drill did not stop: {job}"
        time.sleep(1)
    assert job["status"] == "failed"
    error = str(job["error"])
    assert error.startswith("drill stopped by request"), error
    sandbox = re.search(r"sandbox (/\S+)\)", error)
    assert sandbox, error
    assert not Path(sandbox.group(1)).exists()
    assert list(Path(sandbox.group(1)).parent.glob(Path(sandbox.group(1)).name + "*")) == []
    assert _processes_under(sandbox.group(1)) == []
    assert (history.read_text() if history.exists() else "") == before
    assert not gateway.get("/api/admin/drills/run", headers=admin).json()["running"]
    audit = gateway.get("/api/admin/audit?limit=30", headers=admin).json()
    actions = {e["action"] for e in audit}
    assert {"POST /api/admin/drills/run", "DELETE /api/admin/drills/run",
            "job drill.sandbox"} <= actions
