"""AutoGraph against infrastructure it does not run (SPEC §11): a PostgreSQL cluster and a
Redis server started by this test outside any stack, and the session stack's S3 server as an
external endpoint. ``up`` starts only the WAL receiver; ``ps`` shows the rest as external and
healthy; a database backup survives a dropped table; point-in-time recovery of the external
cluster builds a new local cluster with every committed row and says what to do with it."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from pydantic import SecretStr
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.config import Settings
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.postgres.data_folder import pg_user
from autograph.dr.postgres.local_pitr import _stop, recover_into
from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.errors import InvalidInput
from autograph.s3.boto import app_client
from autograph.stack.infra import streaming_lag_bytes
from autograph.stack.lifecycle import Stack
from externalinfra import ExternalPostgres, external_postgres, external_redis
from stackutil import free_port_block, make_home, remove_home, settings_env, stack_settings


@pytest.fixture(scope="module")
def external_pg() -> Iterator[ExternalPostgres]:
    with external_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def stack(infra_stack: Stack, external_pg: ExternalPostgres) -> Iterator[Stack]:
    """A stack whose PostgreSQL, Redis and S3 are all external; only walstream is ours."""
    token = secrets.token_hex(3)
    with external_redis() as redis_url:
        home = make_home("autograph-external-")
        infra = infra_stack
        settings = stack_settings(
            home, pg_host="127.0.0.1", pg_port=external_pg.port, pg_user=external_pg.superuser,
            pg_password=external_pg.password, pg_replication_user=external_pg.replication_user,
            pg_replication_password=external_pg.replication_password,
            pg_database="autograph", pg_sslmode="prefer", redis_url=redis_url,
            s3_endpoint=infra.settings.s3_url, s3_access_key=infra.creds.s3_access_key,
            s3_secret_key=infra.creds.s3_secret_key,
            backup_bucket_database=f"ext-db-{token}", backup_bucket_objects=f"ext-obj-{token}",
            services=("auth",))
        stack = Stack(settings)
        try:
            yield stack
        finally:
            stack.down()
            remove_home(home)


def _connect(settings: Settings, port: int | None = None) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=port or settings.pg_port,
                           user=settings.pg_user,
                           password=settings.pg_password.get_secret_value(),  # type: ignore[union-attr]
                           dbname=settings.pg_database, autocommit=True)


def test_up_starts_only_what_is_not_external_and_ps_shows_their_health(stack: Stack) -> None:
    started = stack.up()
    assert started == ["walstream", "auth"]
    rows = {row.name: row for row in stack.ps()}
    for name in ("postgres", "redis", "s3"):
        assert rows[name].state == "EXTERNAL" and rows[name].healthy, rows[name]
        assert rows[name].pid is None
    assert rows["walstream"].state == "RUNNING" and rows["walstream"].healthy
    # the receiver streams from the external cluster with the replication login
    with _connect(stack.settings) as conn:
        who = conn.execute("SELECT usename FROM pg_stat_replication").fetchall()
    assert [r[0] for r in who] == ["ext_repl"]
    # a service keeps its users in the external PostgreSQL and its sessions in the external Redis
    auth = stack.settings.service_url("auth")
    user = {"email": f"u-{secrets.token_hex(4)}@example.com", "password": "Sturdy-Pass-42"}
    assert httpx.post(f"{auth}/api/auth/register", json=user, timeout=10).status_code == 201
    login = httpx.post(f"{auth}/api/auth/login", json=user, timeout=10)
    assert login.status_code == 200, login.text
    with _connect(stack.settings) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE email = %s",
                            (user["email"],)).fetchone()[0] == 1
    external = redis.Redis.from_url(stack.settings.redis_url.get_secret_value())  # type: ignore[union-attr]
    assert external.dbsize() >= 1


def test_ps_reports_an_external_component_that_is_down(stack: Stack) -> None:
    url = stack.settings.redis_url.get_secret_value()  # type: ignore[union-attr]
    elsewhere = SecretStr(url.rsplit(":", 1)[0] + f":{free_port_block()}/0")
    broken = Stack(stack.settings.model_copy(update={"redis_url": elsewhere}), stack.creds)
    redis_row = next(row for row in broken.ps() if row.name == "redis")
    assert redis_row.state == "EXTERNAL" and not redis_row.healthy
    result = CliRunner().invoke(app, ["ps", "--json"], env=settings_env(stack.settings))
    assert result.exit_code == 0
    assert '"state": "EXTERNAL"' in result.output


def test_the_container_commands_bootstrap_and_probe_work_against_external_servers(
        stack: Stack) -> None:
    env = settings_env(stack.settings)
    ready = CliRunner().invoke(app, ["bootstrap"], env=env)
    assert ready.exit_code == 0, ready.output
    buckets = {b["Name"] for b in app_client(stack.settings, stack.creds).list_buckets()[
        "Buckets"]}
    assert stack.settings.backup_bucket_database in buckets
    for name in ("auth", "walstream"):
        probed = CliRunner().invoke(app, ["probe", name], env=env)
        assert probed.exit_code == 0 and "healthy" in probed.output, probed.output
    down = CliRunner().invoke(app, ["probe", "svg"], env=env)  # not running in this stack
    assert down.exit_code != 0 and "svg unhealthy" in down.output


def test_dr_status_shows_the_external_components_and_their_health(stack: Stack) -> None:
    result = CliRunner().invoke(app, ["dr", "status", "--json"], env=settings_env(stack.settings))
    infra = {item["name"]: item for item in json.loads(result.stdout)["infrastructure"]}
    assert set(infra) == {"postgres", "redis", "s3"}
    assert all(item["external"] and item["healthy"] for item in infra.values()), infra
    assert infra["postgres"]["address"] == f"127.0.0.1:{stack.settings.pg_port}"
    assert "@" not in infra["redis"]["address"]  # the URL's password is not shown


def test_database_backup_and_restore_against_the_external_server(stack: Stack) -> None:
    stack.up()
    with _connect(stack.settings) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g "
                     "ON CONFLICT DO NOTHING")
    manager = DatabaseBackupManager(stack.settings, stack.creds)
    entry = manager.create("ext_backup_1")
    assert entry.locations == ["local", "s3"]
    assert entry.verification.status == "passed"
    with _connect(stack.settings) as conn:
        conn.execute("DROP TABLE items")
    manager.restore("ext_backup_1")
    with _connect(stack.settings) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 500


def test_bucket_backup_and_restore_against_the_external_s3(stack: Stack) -> None:
    client = app_client(stack.settings, stack.creds)
    bucket = f"ext-diagrams-{secrets.token_hex(3)}"
    client.create_bucket(Bucket=bucket)
    for i in range(5):
        client.put_object(Bucket=bucket, Key=f"d/{i}.json", Body=f'{{"n": {i}}}'.encode(),
                          ContentType="application/json")
    manager = MinIOBucketBackupManager(stack.settings, stack.creds)
    entry = manager.create(bucket, f"ext_{bucket}")
    assert entry.locations == ["local", "s3"]
    for i in range(5):  # the failure: every object gone
        client.delete_object(Bucket=bucket, Key=f"d/{i}.json")
    result = manager.restore(entry.name)
    assert (result.restored, result.failed) == (5, 0)
    body = client.get_object(Bucket=bucket, Key="d/3.json")
    assert body["Body"].read() == b'{"n": 3}' and body["ContentType"] == "application/json"


def _wait_streamed(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if streaming_lag_bytes(stack.settings, stack.creds) == 0:
            return
        time.sleep(0.2)
    raise AssertionError("WAL receiver did not catch up")


def test_pitr_of_the_external_cluster_builds_a_new_local_cluster(
        stack: Stack, external_pg: ExternalPostgres) -> None:
    stack.up()
    with _connect(stack.settings) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id int PRIMARY KEY)")
        conn.execute("INSERT INTO events SELECT generate_series(1, 10) ON CONFLICT DO NOTHING")
    physical = PhysicalBackupManager(stack.settings, stack.creds)
    physical.create("ext_base_1")  # pg_basebackup over TCP as the replication user
    with _connect(stack.settings) as conn:  # after the base backup: only the WAL has these
        conn.execute("INSERT INTO events SELECT generate_series(11, 25)")
    _wait_streamed(stack)
    with pytest.raises(InvalidInput, match="--into DIR"):
        physical.recover(lambda: None, lambda: None)  # never swaps a folder it does not own

    folder = make_home("autograph-recovered-")  # the server's user must traverse it
    target, port = folder / "recovered", free_port_block()
    result = recover_into(physical, target, port)
    try:
        assert result.table_rows["public.events"] == 25
        with _connect(stack.settings, port) as conn:
            assert conn.execute("SELECT max(id) FROM events").fetchone()[0] == 25
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert f"127.0.0.1:{port}" in result.instructions
        assert "pg_dump" in result.instructions and f"pg_ctl -D {target}" in result.instructions
        # the external server was not touched and still streams to the receiver
        with _connect(stack.settings) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 25
    finally:
        _stop(physical, target, pg_user(stack.settings))
        remove_home(folder)


def test_recovery_into_a_folder_that_is_not_empty_is_refused(stack: Stack,
                                                            tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    result = CliRunner().invoke(app, ["backup", "base", "recover", "--into", str(tmp_path)],
                                env=settings_env(stack.settings))
    assert result.exit_code == InvalidInput.exit_code
    assert "is not empty" in result.output and "Traceback" not in result.output
