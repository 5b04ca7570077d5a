"""The ``autograph`` command: one Typer app, one error handler at the edge."""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from autograph.cli import stack as stack_cli
from autograph.cli.output import fail
from autograph.errors import AutographError


class AutographGroup(TyperGroup):
    """The root command group: an AutographError anywhere below becomes one line on stderr
    and its exit code (so CliRunner tests see what an operator sees)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AutographError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


app = typer.Typer(
    cls=AutographGroup,
    help="AutoGraph v3: run the stack, back it up, restore it, and drill disaster recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_cli.register(app)


def _register_optional() -> None:
    """Attach the command groups of the DR core (each lives in its own module)."""
    import importlib

    for module_name, attribute in (
        ("autograph.cli.backup", "register"),
        ("autograph.cli.admin", "register"),
        ("autograph.cli.dr", "register"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        getattr(module, attribute)(app)


_register_optional()


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
