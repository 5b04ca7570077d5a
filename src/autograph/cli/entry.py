"""The ``autograph`` program's entry point: ``--version`` answered before anything is imported.

Everything else goes to the Typer app (:func:`autograph.cli.main.run`), whose import is most of
a command's start-up; ``autograph --version`` alone needs none of it.
"""

from __future__ import annotations

import sys

from autograph.cli.version import version_text


def run() -> None:
    """Run ``autograph`` with the command line's arguments."""
    if sys.argv[1:] == ["--version"]:  # the app's eager --version option, same line and exit
        print(version_text(), flush=True)
        return
    from autograph.cli.main import run as run_app

    run_app()
