"""A drill sandbox made beside a stack on the default ports shares nothing with it: no port
(S3's block of eight included), no folder, no secret, no outside endpoint. (The e2e drill
checks a running stack on free ports keeps its processes and data: tests/e2e/test_drill.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograph.config import Settings, load_settings
from autograph.dr.drill.sandbox import SERVICE_PORTS, sandbox_settings


def _ports(settings: Settings) -> set[int]:
    ports = {settings.pg_port, settings.redis_port,
             *range(settings.s3_port, settings.s3_port + 8)}
    return ports | {settings.service_port(name) for name in SERVICE_PORTS}


@pytest.fixture
def default_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A stack on the shipped default ports, with an external backup copy and alerts."""
    monkeypatch.chdir(tmp_path)  # no .env of a checkout
    for name in [n for n in os.environ if n.startswith("AUTOGRAPH_")]:
        monkeypatch.delenv(name)
    return load_settings(home=tmp_path / "live", backup_dir=tmp_path / "live-backups",
                         backup_s3_endpoint="http://127.0.0.1:9100",
                         slack_webhook_url="https://hooks.example.com/services/T/B/x",
                         admin_api_key="the-live-stacks-admin-key-0123456789")


def test_the_default_ports_are_the_shipped_ones(default_stack: Settings) -> None:
    assert (default_stack.pg_port, default_stack.redis_port) == (5432, 6379)


def test_a_sandbox_beside_a_default_stack_takes_none_of_its_ports(default_stack: Settings,
                                                                  tmp_path: Path) -> None:
    sandbox = sandbox_settings(default_stack, tmp_path / "sandbox")
    assert len(_ports(sandbox)) == 2 + 8 + len(SERVICE_PORTS)  # no port used twice inside
    assert _ports(sandbox).isdisjoint(_ports(default_stack))


def test_a_sandbox_keeps_its_state_in_its_home_and_reaches_nothing_outside(
        default_stack: Settings, tmp_path: Path) -> None:
    home = tmp_path / "sandbox"
    sandbox = sandbox_settings(default_stack, home)
    for folder in (sandbox.data_dir, sandbox.backups_dir, sandbox.dr_dir, sandbox.secrets_dir,
                   sandbox.log_dir, sandbox.run_dir):
        assert folder.resolve().is_relative_to(home.resolve()), folder
    assert sandbox.backup_s3_endpoint is None and sandbox.slack_webhook_url is None
    assert sandbox.admin_api_key is None  # its own, generated in its own secrets folder
    assert sandbox.host == "127.0.0.1" and sandbox.pg_host is None
