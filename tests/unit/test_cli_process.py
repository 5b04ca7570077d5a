"""The installed ``autograph`` program run as a process: what an operator's shell sees.

The program's entry point answers ``--version`` before importing the Typer app, and ``--help``
no longer imports pydantic; these tests hold both paths to the app's own output, exit codes and
one-line errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from autograph.errors import ConfigError

PROGRAM = str(Path(sys.executable).parent / "autograph")
# The Typer app called directly, without the entry point (named as the program is).
APP = [sys.executable, "-c", "from autograph.cli.main import app; app(prog_name='autograph')"]


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "100", **env}
    return subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=120,
                          check=False)


def test_version_from_the_entry_point_is_the_apps() -> None:
    fast, app = run([PROGRAM, "--version"]), run([*APP, "--version"])
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, app.stdout, "")
    assert app.returncode == 0
    assert fast.stdout == f"autograph {version('autograph')}\n"


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version", "extra"], ["backup", "--help"],
                                  ["backup", "db"], ["backup", "db", "--help"],
                                  ["backup", "db", "restore", "--help"]])
def test_help_and_eager_version_are_the_apps(argv: list[str]) -> None:
    ours, app = run([PROGRAM, *argv]), run([*APP, *argv])
    assert (ours.returncode, ours.stdout, ours.stderr) == (app.returncode, app.stdout,
                                                           app.stderr)
    assert (ours.stdout or ours.stderr).startswith(("Usage: autograph", "autograph "))


def test_help_of_a_backup_command_does_not_import_pydantic() -> None:
    code = ("import sys\n"
            "sys.argv = ['autograph', 'backup', 'db', 'list', '--help']\n"
            "from autograph.cli.entry import run\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "print('pydantic' in sys.modules, file=sys.stderr)")
    result = run([sys.executable, "-c", code])
    assert "Usage: autograph backup db list [OPTIONS]" in result.stdout
    assert result.stderr.strip() == "False"


@pytest.mark.parametrize(("argv", "message"), [
    (["nosuch"], "Error: No such command 'nosuch'."),
    (["backup", "db", "restore"], "Error: Missing argument 'name'."),
    (["backup", "db", "restore", "x", "--jobs", "many"], "Error: Invalid value for '--jobs'"),
])
def test_usage_errors_exit_2_with_the_usage_and_one_error_line(argv: list[str],
                                                               message: str) -> None:
    result = run([PROGRAM, *argv])
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] != []


def test_an_invalid_setting_is_one_error_line_and_its_exit_code(tmp_path: Path) -> None:
    result = run([PROGRAM, "backup", "db", "list", "--json"], AUTOGRAPH_HOME=str(tmp_path),
                 AUTOGRAPH_PG_PORT="99999")
    assert result.returncode == ConfigError("").exit_code
    assert result.stdout == ""
    assert result.stderr.startswith("error: invalid setting AUTOGRAPH_PG_PORT")
    assert len(result.stderr.strip().splitlines()) == 1
