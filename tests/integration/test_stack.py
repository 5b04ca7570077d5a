"""The local stack: up, ps, stop/start, SIGKILL, idempotent up, down, and its faults."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.errors import ConfigError
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, settings_env, stack_settings


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    home = make_home("autograph-stack-")
    stack = Stack(stack_settings(home))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
        remove_home(home)


def _status(stack: Stack) -> dict[str, object]:
    return {row.name: row for row in stack.ps()}


def test_up_makes_every_component_healthy_and_creates_the_buckets(stack: Stack) -> None:
    rows = _status(stack)
    assert {"postgres", "redis", "s3"} <= set(rows)
    assert all(row.healthy and row.state == "RUNNING" for row in rows.values())  # type: ignore[attr-defined]
    names = {b["Name"] for b in app_client(stack.settings, stack.creds).list_buckets()["Buckets"]}
    assert {"diagrams", "exports", "uploads", "autograph-backups", "minio-backups"} <= names


def test_second_up_is_a_no_op(stack: Stack) -> None:
    pids = {row.name: row.pid for row in stack.ps()}
    assert stack.up() == []
    assert {row.name: row.pid for row in stack.ps()} == pids


def test_postgres_runs_unprivileged_and_needs_a_password(stack: Stack) -> None:
    pid = _status(stack)["postgres"].pid  # type: ignore[attr-defined]
    uid = os.stat(f"/proc/{pid}").st_uid
    assert uid != 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=stack.settings.pg_port,
                        user=stack.settings.pg_user, password="wrong", dbname="postgres",
                        connect_timeout=3)


def test_secrets_are_private(stack: Stack) -> None:
    for path in stack.settings.secrets_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path


def test_ps_json_through_the_cli(stack: Stack) -> None:
    result = CliRunner().invoke(app, ["ps", "--json"], env=settings_env(stack.settings))
    assert result.exit_code == 0, result.output
    assert '"name": "postgres"' in result.stdout and '"healthy": true' in result.stdout


def test_stop_and_start_one_component(stack: Stack) -> None:
    stack.stop("redis")
    assert _status(stack)["redis"].healthy is False  # type: ignore[attr-defined]
    assert _status(stack)["postgres"].healthy is True  # type: ignore[attr-defined]
    stack.start("redis")
    assert _status(stack)["redis"].healthy is True  # type: ignore[attr-defined]


def test_sigkilled_component_is_reported_down_and_start_keeps_its_data(stack: Stack) -> None:
    settings = stack.settings
    conninfo = dict(host="127.0.0.1", port=settings.pg_port, user=settings.pg_user,
                    password=stack.creds.pg_password, dbname=settings.pg_database)
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS survivor (v text)")
        conn.execute("INSERT INTO survivor VALUES ('still here')")
    pid = _status(stack)["postgres"].pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _status(stack)["postgres"].state == "RUNNING":  # type: ignore[attr-defined]
        time.sleep(0.2)
    row = _status(stack)["postgres"]
    assert row.state != "RUNNING" and row.healthy is False  # type: ignore[attr-defined]
    stack.start("postgres")
    with psycopg.connect(**conninfo) as conn:
        assert conn.execute("SELECT v FROM survivor").fetchone() == ("still here",)


def test_port_taken_fails_naming_port_and_component_and_starts_nothing() -> None:
    home = make_home("autograph-busy-")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    try:
        stack = Stack(stack_settings(home, redis_port=busy))
        with pytest.raises(ConfigError) as caught:
            stack.up()
        assert str(busy) in str(caught.value) and "redis" in str(caught.value)
        assert not stack.supervisor.running()
        assert not (stack.settings.data_dir / "postgres" / "PG_VERSION").exists()
    finally:
        blocker.close()
        remove_home(home)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AUTOGRAPH_PG_PORT", "99999", "AUTOGRAPH_PG_PORT"),
        ("AUTOGRAPH_REDIS_PORT", "not-a-port", "AUTOGRAPH_REDIS_PORT"),
        ("AUTOGRAPH_HOME", "/proc/autograph", "AUTOGRAPH_HOME"),
    ],
)
def test_broken_setting_is_a_one_line_error(variable: str, value: str, named: str) -> None:
    env = {**os.environ, variable: value}
    result = subprocess.run([sys.executable, "-m", "autograph.cli.main", "ps"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_down_stops_everything() -> None:
    home = make_home("autograph-down-")
    stack = Stack(stack_settings(home))
    try:
        stack.up(only=["redis"])
        assert _status(stack)["redis"].healthy  # type: ignore[attr-defined]
        stack.down()
        assert not stack.supervisor.running()
        assert all(not row.healthy for row in stack.ps())
    finally:
        stack.down()
        remove_home(home)
