"""``GET /api/admin/recovery/live`` on the real gateway: admin only, ``none`` when no recovery
is pending, the live steps while a runner (here this test process, alive) holds the state."""

from __future__ import annotations

import json
import os

import httpx

from autograph.dr.recovery import live
from autograph.stack.lifecycle import Stack


def test_live_recovery_steps_are_served_to_admins_only(app_stack: Stack) -> None:
    key = {"Authorization": f"Bearer {app_stack.creds.admin_api_key}"}
    path = live.state_path(app_stack.settings.dr_dir)
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as gateway:
        assert gateway.get("/api/admin/recovery/live").status_code == 401
        assert gateway.get("/api/admin/recovery/live", headers=key).json()["state"] == "none"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "operation": "recovery", "params": {"scenario": "objects"},
            "started_at": "2026-12-02T09:00:00Z", "runner_pid": os.getpid(),
            "planned": ["assess", "restore_buckets", "verify"],
            "done": [{"name": "assess", "status": "passed", "detail": "<b>all</b> down",
                      "started_at": "2026-12-02T09:00:00Z", "duration_seconds": 1.5}],
            "current": "restore_buckets", "current_started_at": "2026-12-02T09:00:02Z"}))
        try:
            answer = gateway.get("/api/admin/recovery/live", headers=key)
        finally:
            path.unlink()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["state"], body["scenario"], body["current"]) == (
        "running", "objects", "restore_buckets")
    assert [(s["name"], s["status"]) for s in body["steps"]] == [
        ("assess", "passed"), ("restore_buckets", "running"), ("verify", "pending")]
    assert body["steps"][0]["detail"] == "<b>all</b> down"
    assert body["steps"][1]["duration_seconds"] > 0
