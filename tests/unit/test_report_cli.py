"""The ``autograph dr`` edge refuses what it must before touching any stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOGRAPH_HOME", str(tmp_path))


def test_a_live_drill_needs_the_explicit_confirmation() -> None:
    result = CliRunner().invoke(app, ["dr", "drill", "--live"])
    assert result.exit_code == InvalidInput.exit_code
    assert "--i-understand-this-destroys-data" in result.output


def test_an_unknown_drill_scenario_is_refused() -> None:
    result = CliRunner().invoke(app, ["dr", "drill", "--scenario", "meteor"])
    assert result.exit_code == InvalidInput.exit_code
    assert "complete, database, objects" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--scenario", "meteor"], "unknown scenario"),
    (["--scenario", "database", "--to", "yesterday"], "ISO 8601"),
    (["--scenario", "database", "--to", "2026-01-05T09:00:00"], "time zone"),
])
def test_recover_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["dr", "recover", *args])
    assert result.exit_code == InvalidInput.exit_code
    assert message in result.output


def test_the_plans_script_answers_help() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "test_disaster_recovery.py"), "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0
    assert "--simulate" in done.stdout and "--live" in done.stdout


def test_the_plans_script_exits_with_the_error_code() -> None:
    from autograph.cli.dr import drill_main

    assert drill_main(["--live"]) == InvalidInput.exit_code
