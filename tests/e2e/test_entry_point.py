"""The plan's own command, through its entry point: ``python test_disaster_recovery.py
--simulate`` runs a drill in a sandbox of its own, exits 0 only when it passed, and leaves its
report in the configured home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackutil import make_home, remove_home

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SERVICES = '["gateway","auth","diagram","svg","collaboration","export"]'


@pytest.mark.timeout(1500)  # a sandbox of its own: minutes on a loaded machine
def test_the_plans_command_runs_a_sandbox_drill_and_exits_0_when_it_passed() -> None:
    home = make_home("autograph-entry-")
    try:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("AUTOGRAPH_")}
        env.update({"AUTOGRAPH_HOME": str(home), "AUTOGRAPH_SERVICES": SERVICES,
                    "AUTOGRAPH_HEALTH_TIMEOUT_SECONDS": "240"})
        done = subprocess.run(
            [sys.executable, str(ROOT / "test_disaster_recovery.py"), "--simulate",
             "--scenario", "database", "--users", "1", "--diagrams", "2", "--versions", "1",
             "--uploads", "1", "--exports", "1", "--window", "1", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1400, check=False)
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        summaries = json.loads(done.stdout)
        assert [s["scenario"] for s in summaries] == ["database"]
        assert done.returncode == (0 if summaries[0]["passed"] else 1), done.stderr[-2000:]
        assert summaries[0]["passed"], summaries[0]
        report = Path(summaries[0]["report"])
        assert report.is_relative_to(home / "dr" / "reports")
        assert (report / "report.html").exists() and (report / "report.json").exists()
    finally:
        remove_home(home)
