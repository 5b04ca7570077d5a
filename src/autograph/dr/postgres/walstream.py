"""Continuous WAL streaming into the backup store (SPEC §7: the RPO that daily dumps cannot give).

``pg_receivewal`` runs as a stack component beside PostgreSQL, on a replication slot (so the
server keeps WAL the receiver has not yet taken), writing with ``--synchronous`` into
``BACKUP_DIR/wal/<system identifier>/``. One folder per cluster: a cluster rebuilt after a
complete loss has a new identifier and its segment names would collide with the old ones.

Run as a program (``python -m autograph.dr.postgres.walstream``) it waits for PostgreSQL, makes
sure the slot exists, then becomes ``pg_receivewal``. The password travels in the environment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from autograph import commands
from autograph.config import Settings, load_settings
from autograph.connections import pg_kwargs, pg_tool_args, pg_tool_env
from autograph.errors import DependencyDown
from autograph.secrets import Credentials, load_credentials
from autograph.stack.infra import WALSTREAM_APPLICATION_NAME

SLOT = "autograph_wal"


def wal_root(settings: Settings) -> Path:
    """Where streamed WAL lives: one sub-folder per cluster (system identifier)."""
    return settings.backups_dir / "wal"


def system_identifier(settings: Settings, creds: Credentials) -> str:
    """The running cluster's system identifier. Raises DependencyDown if PostgreSQL is down."""
    import psycopg

    try:
        with psycopg.connect(**pg_kwargs(settings, creds, "postgres", connect_timeout=3)
                             ) as conn:
            row = conn.execute("SELECT system_identifier::text FROM pg_control_system()"
                               ).fetchone()
    except psycopg.Error as exc:
        raise DependencyDown(f"PostgreSQL unreachable: {str(exc).strip()[:200]}") from None
    assert row is not None
    return str(row[0])


def cluster_wal_dir(settings: Settings, creds: Credentials) -> Path:
    """The WAL folder of the running cluster."""
    return wal_root(settings) / system_identifier(settings, creds)


def _client_env(settings: Settings, creds: Credentials) -> dict[str, str]:
    return {**pg_tool_env(settings, creds, replication=True),
            "PGAPPNAME": WALSTREAM_APPLICATION_NAME}


def receiver_args(settings: Settings, target: Path) -> list[str]:
    """The pg_receivewal command line (no secrets)."""
    return [
        str(settings.pg_bin / "pg_receivewal"), "-D", str(target),
        *pg_tool_args(settings, replication=True), "--slot", SLOT,
        "--synchronous", "--no-password", "--status-interval", "5",
    ]


def ensure_slot(settings: Settings, creds: Credentials) -> None:
    """Create the replication slot if it does not exist."""
    commands.run(
        [str(settings.pg_bin / "pg_receivewal"), *pg_tool_args(settings, replication=True),
         "--slot", SLOT, "--create-slot", "--if-not-exists",
         "--no-password"],
        env=_client_env(settings, creds), what="pg_receivewal --create-slot", timeout=30,
    )


def main() -> None:
    """Wait for PostgreSQL, ensure the slot and folder, then exec pg_receivewal."""
    settings = load_settings()
    creds = load_credentials(settings)
    deadline = time.monotonic() + settings.health_timeout_seconds
    while True:
        try:
            target = cluster_wal_dir(settings, creds)
            ensure_slot(settings, creds)
            break
        except Exception as exc:  # keep waiting for PostgreSQL, then give up loudly
            if time.monotonic() > deadline:
                print(f"walstream: giving up: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
            time.sleep(1)
    target.mkdir(parents=True, exist_ok=True)
    os.environ.update(_client_env(settings, creds))
    args = receiver_args(settings, target)
    print(f"walstream: streaming WAL into {target}", file=sys.stderr, flush=True)
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
