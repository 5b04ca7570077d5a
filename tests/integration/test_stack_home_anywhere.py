"""`up` from a home anywhere (under root's 0700 home folder) and a failed `up` leaving nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from autograph.errors import OperationFailed
from autograph.stack import infra
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, stack_settings


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only as root")
def test_up_as_root_with_the_home_under_a_private_folder() -> None:
    private = Path(tempfile.mkdtemp(prefix="autograph-private-"))  # mode 0700, like /root
    settings = stack_settings(private / "checkout" / "var")
    stack = Stack(settings)
    pg_home = infra.postgres_home(settings)
    try:
        assert not infra.user_can_reach(settings.data_dir, settings.pg_os_user)
        assert not pg_home.is_relative_to(private)
        stack.up(only=["postgres"])
        rows = {row.name: row for row in stack.ps()}
        assert rows["postgres"].healthy, rows["postgres"].detail
        assert (infra.postgres_data_dir(settings) / "PG_VERSION").exists()
        assert (pg_home / "AUTOGRAPH_HOME").read_text().strip() == str(settings.home_dir)
        with psycopg.connect(host=settings.host, port=settings.pg_port, user=settings.pg_user,
                             password=stack.creds.pg_password, dbname="postgres",
                             connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # A second Stack over the same home finds the same cluster (it stays where it is).
        assert infra.postgres_data_dir(settings) == pg_home / "postgres"
    finally:
        stack.down()
        if pg_home.is_relative_to(infra.FALLBACK_PG_ROOT):
            shutil.rmtree(pg_home, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


def test_a_reachable_home_keeps_postgres_inside_it() -> None:
    home = make_home("autograph-reach-")
    try:
        settings = stack_settings(home)
        assert infra.postgres_home(settings) == settings.data_dir
    finally:
        remove_home(home)


def test_failed_up_leaves_nothing_running() -> None:
    home = make_home("autograph-failup-")
    stack = Stack(stack_settings(home, pg_bin_dir=home / "no-such-bin"))
    try:
        with pytest.raises(OperationFailed, match="initdb"):
            stack.up()
        assert not stack.supervisor.running()
        assert stack.ps() and all(row.state == "STOPPED" for row in stack.ps())
    finally:
        stack.down()
        remove_home(home)
