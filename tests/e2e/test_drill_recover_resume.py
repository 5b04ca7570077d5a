"""``autograph dr recover`` killed in the middle of a complete recovery, then run again: the
second run continues from the step it stopped in and completes. The stack has no gateway:
the recovery must not need one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograph.dr import drill_faults
from autograph.dr.drill import take_backups
from autograph.dr.workload import ApiClient, DatasetSpec, check_dataset, load_dataset
from autograph.s3client import app_client
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, settings_env, stack_settings

pytestmark = pytest.mark.e2e

KILL_DURING = ("restore_buckets", "start_services")


@pytest.fixture()
def stack() -> Iterator[Stack]:
    home = make_home("autograph-resume-")
    stack = Stack(stack_settings(home, services=("auth", "diagram")))
    try:
        stack.up()
        yield stack
    finally:
        drill_faults.kill_everything(stack, timeout=5)
        stack.down()
        remove_home(home)


def _recover(stack: Stack, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **settings_env(stack.settings)}
    return subprocess.Popen(
        [sys.executable, "-m", "autograph.cli.main", "dr", "recover", "--scenario", "complete",
         *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def _state(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def test_a_killed_recovery_resumes_where_it_stopped_and_completes(stack: Stack) -> None:
    api = ApiClient(stack.settings, via_gateway=False)
    s3 = app_client(stack.settings, stack.creds)
    dataset = load_dataset(api, s3, DatasetSpec(users=1, diagrams_per_user=3, uploads=2,
                                                exports=2))
    take_backups(stack, "1")
    drill_faults.complete_failure(stack)

    refused = _recover(stack)  # no --yes and no terminal: refused before touching anything
    _out, errors = refused.communicate(timeout=60)
    assert refused.returncode != 0 and "--yes" in errors

    state_path = stack.settings.dr_dir / "recovery" / "state.json"
    first = _recover(stack, "--yes")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if _state(state_path).get("current") in KILL_DURING:
            break
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()
    stopped_in = _state(state_path)["current"]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    assert stopped_in in KILL_DURING

    second = _recover(stack, "--yes", "--json")
    output, messages = second.communicate(timeout=300)
    assert second.returncode == 0, messages
    assert f"stopped during {stopped_in}" in messages
    report = json.loads(output)
    steps = {step["name"]: step for step in report["steps"]}
    assert report["status"] == "passed"
    assert steps["restore_database"]["resumed"] and steps["assess"]["resumed"]
    assert not steps[str(stopped_in)]["resumed"]
    assert not steps["verify"]["resumed"] and steps["verify"]["status"] == "passed"
    assert not state_path.exists()

    for account in dataset.accounts:
        account.token = api.login(account.email, account.password)
    found = check_dataset(api, s3, dataset)
    assert found["problems"] == []
    assert found["diagrams"]["checked"] == 3 and found["uploads"]["checked"] == 2
