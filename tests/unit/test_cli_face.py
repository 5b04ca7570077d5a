"""The CLI's face: ``--version`` and human-readable sizes and ages in tables."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.cli.output import human_age, human_size


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"autograph {version('autograph')}"


@pytest.mark.parametrize(("size", "text"), [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (18_840, "18.4 KiB"),
    (5 * 1024**3, "5.0 GiB"), (3 * 1024**5, "3072.0 TiB")])
def test_sizes_read_as_people_write_them(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "never"), (-3, "0 s"), (44.6, "45 s"), (60, "1 min"), (299, "4 min"),
    (3600, "1 h"), (3 * 3600 + 5 * 60 + 9, "3 h 5 min"), (86400, "1 d"),
    (2 * 86400 + 4 * 3600 + 100, "2 d 4 h")])
def test_ages_read_as_people_say_them(seconds: float | None, text: str) -> None:
    assert human_age(seconds) == text
