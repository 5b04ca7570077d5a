"""The ``autograph`` program's entry point: ``--version`` answered before anything is imported.

Everything else goes to the Typer app (:func:`autograph.cli.main.run`), whose import is most of
a command's start-up; ``autograph --version`` alone needs none of it.
"""

from __future__ import annotations

import sys


def version_text() -> str:
    """``autograph <installed version>`` (``unknown`` when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("autograph")
    except PackageNotFoundError:  # run from a source tree without installing
        number = "unknown"
    return f"autograph {number}"


def run() -> None:
    """Run ``autograph`` with the command line's arguments."""
    if sys.argv[1:] == ["--version"]:  # the app's eager --version option, same line and exit
        print(version_text(), flush=True)
        return
    from autograph.cli.main import run as run_app

    run_app()
