"""The ``autograph`` command: one Typer app, one error handler at the edge."""

from __future__ import annotations

import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from autograph.cli import (
    admin,
    backup,
    backup_base,
    backup_objects,
    backup_offsite,
    backup_retention,
    backup_snapshots,
    dr,
    serve,
)
from autograph.cli import stack as stack_cli
from autograph.cli.output import fail
from autograph.errors import AutographError


class AutographGroup(TyperGroup):
    """The root command group: an AutographError anywhere below becomes one line on stderr
    and its exit code (so CliRunner tests see what an operator sees)."""

    def invoke(self, ctx: Any) -> object:  # typer vendors click: its Context type is private
        try:
            return super().invoke(ctx)
        except AutographError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
            raise  # not reached: ctx.exit raises


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("autograph")
        except PackageNotFoundError:  # run from a source tree without installing
            number = "unknown"
        click.echo(f"autograph {number}")
        raise typer.Exit()


app = typer.Typer(
    cls=AutographGroup,
    help="AutoGraph v3: run the stack, back it up, restore it, and drill disaster recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_cli.register(app)


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the version and exit")) -> None:
    """AutoGraph v3: run the stack, back it up, restore it, and drill disaster recovery."""


def register_all() -> None:
    """Attach every command group: the stack, backups of each kind, admin and dr."""
    for group in (backup_objects, backup_retention, backup_base, backup_snapshots,
                  backup_offsite):
        group.register(backup.backup_app)
    for top in (backup, admin, dr, serve):
        top.register(app)


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
