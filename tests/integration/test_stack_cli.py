"""The stack verbs through the CLI (the plan's docker-compose verbs): up, ps, stop, start,
restart, logs, down, on a stack of its own (PostgreSQL, Redis, S3 on free ports): `up` and
`down` cannot be tried on a stack other tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from autograph.cli.main import app
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, settings_env, stack_settings


@pytest.fixture(scope="module")
def cli_stack() -> Iterator[tuple[Stack, dict[str, str]]]:
    home = make_home("autograph-cli-")
    settings = stack_settings(home)
    stack = Stack(settings)
    try:
        yield stack, settings_env(settings)
    finally:
        stack.down()
        remove_home(home)


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def _ps(env: dict[str, str]) -> dict[str, Any]:
    result = _run(env, "ps", "--json")
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_up_ps_stop_start_restart_logs_down(cli_stack: tuple[Stack, dict[str, str]]) -> None:
    stack, env = cli_stack
    up = _run(env, "up")
    assert up.exit_code == 0, up.output
    rows = _ps(env)
    assert f"stack healthy ({len(rows)} started" in up.stderr
    assert {"postgres", "redis", "s3"} <= set(rows)
    assert all(row["healthy"] and row["state"] == "RUNNING" for row in rows.values()), rows

    stopped = _run(env, "stop", "redis")
    assert (stopped.exit_code, stopped.stderr.strip()) == (0, "redis stopped")
    rows = _ps(env)
    assert rows["redis"]["healthy"] is False and rows["redis"]["state"] == "STOPPED"
    assert rows["postgres"]["healthy"] is True

    started = _run(env, "start", "redis")
    assert (started.exit_code, started.stderr.strip()) == (0, "redis started")
    before = _ps(env)["redis"]
    assert before["healthy"] is True

    restarted = _run(env, "restart", "redis")
    assert (restarted.exit_code, restarted.stderr.strip()) == (0, "redis restarted")
    after = _ps(env)["redis"]
    assert after["healthy"] is True and after["pid"] != before["pid"]

    logs = _run(env, "logs", "postgres", "--tail", "3")
    assert logs.exit_code == 0, logs.output
    assert 0 < len(logs.stdout.splitlines()) <= 3

    down = _run(env, "down")
    assert (down.exit_code, down.stderr.strip()) == (0, "stack stopped")
    assert not stack.supervisor.running()
    assert not any(row["healthy"] for row in _ps(env).values())


@pytest.mark.parametrize("verb", ["start", "stop", "restart", "logs"])
def test_an_unknown_component_is_a_one_line_error_listing_the_names(
        cli_stack: tuple[Stack, dict[str, str]], verb: str) -> None:
    _, env = cli_stack
    result = _run(env, verb, "postgress")
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "postgress" in lines[0] and "redis" in lines[0], result.output
