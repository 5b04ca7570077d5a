"""The ``autograph`` command: one Typer app, one error handler at the edge.

Command groups are imported when used (:mod:`autograph.cli.lazy`): ``autograph backup …``
never imports the drill's or the admin commands' modules.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import typer

from autograph.cli import stack as stack_cli
from autograph.cli.lazy import Lazy, LazyGroup
from autograph.cli.output import fail
from autograph.cli.version import version_text
from autograph.errors import AutographError


class AutographGroup(LazyGroup):
    """The root command group: an AutographError anywhere below becomes one line on stderr
    and its exit code (so CliRunner tests see what an operator sees)."""

    # Imported on first use: keeps start-up fast (backup's own subgroups: cli/backup.py).
    lazy: ClassVar[dict[str, Lazy]] = {
        "backup": Lazy("autograph.cli.backup", "backup_app"),
        "admin": Lazy("autograph.cli.admin", "admin_app"),
        "dr": Lazy("autograph.cli.dr", "dr_app"),
        "serve": Lazy("autograph.cli.serve", "register", "serve"),
        "probe": Lazy("autograph.cli.serve", "register", "probe"),
        "bootstrap": Lazy("autograph.cli.serve", "register", "bootstrap"),
        "migrate": Lazy("autograph.cli.migrate", "register", "migrate"),
    }

    def invoke(self, ctx: Any) -> object:  # typer vendors click: its Context type is private
        try:
            return super().invoke(ctx)
        except AutographError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
            raise  # not reached: ctx.exit raises


def _version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


app = typer.Typer(
    cls=AutographGroup,
    help="AutoGraph v3: run the stack, back it up, restore it, and drill disaster recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help and usage errors in click's plain format: typer's rich format imports rich's
    # markdown, syntax and traceback modules (~0.25 s of a command's start-up).
    rich_markup_mode=None,
)


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the version and exit")) -> None:
    """AutoGraph v3: run the stack, back it up, restore it, and drill disaster recovery."""


def register_all() -> None:
    """Attach the commands registered eagerly: the stack's (the groups are lazy, above)."""
    stack_cli.register(app)


register_all()


def run() -> None:
    """Entry point: run the app, turning AutographErrors into one-line messages."""
    try:
        app()
    except AutographError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)


if __name__ == "__main__":
    run()
    sys.exit(0)
