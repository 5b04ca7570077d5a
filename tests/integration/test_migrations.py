"""The one migration runner at its edges, on the session's app stack: ``autograph migrate``
(idempotent, --json, one-line errors), a service that refuses a database whose schema is behind
and heals once it is migrated, and a dump taken before a service's tables existed, restored
through the restore path, served at once without a restart."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import psycopg
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.schema.runner import migrate, status
from autograph.schema.versions import MIGRATIONS
from autograph.services.diagrams.app import create_app as diagram_app
from autograph.stack.lifecycle import Stack
from stackutil import free_port_block, settings_env

HUB = 1001  # the integration hub's tables (webhooks, webhook_deliveries, integration_cursors)
CORE = tuple(m for m in MIGRATIONS if m.version < HUB)


def _cli(stack: Stack, *args: str, **env: str) -> Any:
    return CliRunner().invoke(app, ["migrate", *args], env={**settings_env(stack.settings),
                                                            **env})


def _sql(stack: Stack, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    s = stack.settings
    with psycopg.connect(host=s.host, port=s.pg_port, user=s.pg_user, autocommit=True,
                         password=stack.creds.pg_password, dbname=s.pg_database) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _as_before_the_hub(stack: Stack) -> None:
    """The live database as a dump taken before the hub migrated would bring it back."""
    _sql(stack, "DROP TABLE webhook_deliveries, webhooks, integration_cursors")
    _sql(stack, "DELETE FROM schema_migrations WHERE version = %s", (HUB,))


def _pid(stack: Stack, name: str) -> int | None:
    return stack.supervisor.all_info()[name].pid


def test_migrate_twice_applies_everything_once_then_nothing(
        app_stack: Stack, scratch_database: dict[str, Any]) -> None:
    database = scratch_database["dbname"]
    first = _cli(app_stack, "--database", database, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["applied_now"] == sorted(m.version for m in MIGRATIONS)
    assert report["status"]["pending"] == [] and report["status"]["database"] == database
    second = _cli(app_stack, "--database", database)
    assert second.exit_code == 0, second.output
    assert f"schema of {database} current at version {max(report['applied_now'])}" in (
        second.stderr)
    assert "applied" not in second.stderr
    assert migrate(scratch_database).applied_now == []


def test_migrate_status_names_what_is_pending_without_applying_it(
        app_stack: Stack, scratch_database: dict[str, Any]) -> None:
    migrate(scratch_database, CORE)
    shown = _cli(app_stack, "--database", scratch_database["dbname"], "--status")
    assert shown.exit_code == 0, shown.output
    assert f"pending: {HUB} (integration hub" in shown.stderr and "behind" in shown.stderr
    assert status(scratch_database).pending[0].version == HUB  # still pending


def test_migrate_against_an_unreachable_server_is_one_line_and_exit_5(app_stack: Stack) -> None:
    result = _cli(app_stack, AUTOGRAPH_PG_PORT=str(free_port_block()))
    assert result.exit_code == 5
    assert result.stderr.startswith("error: PostgreSQL at ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_migrate_refuses_a_bad_database_name(app_stack: Stack) -> None:
    result = _cli(app_stack, "--database", "no;such")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_help_says_when_to_run_it(app_stack: Stack) -> None:
    shown = _cli(app_stack, "--help")
    assert shown.exit_code == 0
    assert "autograph up" in shown.stdout and "--json" in shown.stdout


def test_a_service_refuses_a_database_whose_schema_is_behind_then_heals_when_migrated(
        app_stack: Stack, scratch_database: dict[str, Any]) -> None:
    migrate(scratch_database, CORE)
    settings = app_stack.settings.model_copy(update={"pg_database": scratch_database["dbname"]})
    with TestClient(diagram_app(settings), raise_server_exceptions=False) as client:
        behind = client.get("/health")
        assert behind.status_code == 503
        said = behind.json()["checks"]["postgres"]
        assert f"{HUB} (integration hub" in said and "run `autograph migrate`" in said
        assert _cli(app_stack, "--database", scratch_database["dbname"]).exit_code == 0
        assert client.get("/health").json() == {"status": "healthy", "checks": {
            "postgres": "ok", "redis": "ok", "s3": "ok"}}  # the same process, no restart


def test_a_database_restored_by_hand_answers_503_naming_the_fix_until_migrated(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    pid = _pid(app_stack, "integrations")
    _as_before_the_hub(app_stack)
    try:
        # The first use meets the missing table, the next finds the schema behind before any
        # query: both answer the same 503.
        for _ in range(2):
            answer = gateway.get("/api/integrations/webhooks", headers=user)
            assert answer.status_code == 503, answer.text
            assert f"{HUB} (integration hub" in answer.json()["detail"]
            assert "run `autograph migrate`" in answer.json()["detail"]
            assert answer.headers["retry-after"] == "5"
    finally:
        result = _cli(app_stack, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["applied_now"] == [HUB]
    assert gateway.get("/api/integrations/webhooks", headers=user).status_code == 200
    assert _pid(app_stack, "integrations") == pid


def test_a_dump_taken_before_the_hub_migrated_is_restored_migrated_and_served_at_once(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str],
        admin: dict[str, str]) -> None:
    name = f"before_hub_{uuid.uuid4().hex[:8]}"
    pid = _pid(app_stack, "integrations")
    _as_before_the_hub(app_stack)
    try:
        made = gateway.post("/api/admin/backup/create", params={"backup_name": name},
                            headers=admin)
    finally:
        migrate(_conninfo(app_stack))  # the stack whole again until the restore
    assert made.status_code == 201, made.text
    try:
        restored = gateway.post("/api/admin/backup/restore", params={"backup_name": name},
                                headers=admin)
        assert restored.status_code == 200, restored.text
        steps = {s["name"]: s["detail"] for s in restored.json()["steps"]}
        assert list(steps) == ["pg_restore", "row counts", "migrate", "swap"]
        assert steps["migrate"].endswith(f"(applied {HUB})")
        answer = gateway.get("/api/integrations/webhooks", headers=user)  # no retry, no wait
        assert answer.status_code == 200, answer.text
        assert _sql(app_stack, "SELECT version FROM schema_migrations WHERE version = %s",
                    (HUB,)) == [(HUB,)]
        assert _pid(app_stack, "integrations") == pid
    finally:
        gateway.delete(f"/api/admin/backup/{name}", headers=admin)


def _conninfo(stack: Stack) -> dict[str, Any]:
    s = stack.settings
    return {"host": s.host, "port": s.pg_port, "user": s.pg_user,
            "password": stack.creds.pg_password, "dbname": s.pg_database}
