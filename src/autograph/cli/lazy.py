"""Command groups whose subcommands are imported on first use.

Every ``autograph`` command used to import every command module, and each of those the DR core
(pydantic models, psycopg, boto3…): over a second of imports before ``backup db list --help``
printed a line. A :class:`LazyGroup` knows its subcommands by name and module path and imports
a module only when one of its commands is run or listed, so a command pays for its own imports
only (``python -X importtime -m autograph.cli.main backup db list --help``).

:class:`CommandGroup` is the plain group every ``autograph`` group uses: its ``--help`` flag
defaults to False rather than None, so Typer takes the flag's value as it is instead of building
a pydantic validator for it (which imported pydantic, ~half the CPU of ``… --help``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A subcommand found at ``module:attribute``: a ``typer.Typer`` (or a ``register(app)``
    function) mounted as a group, or (with ``command``) one of its commands on its own."""

    module: str
    attribute: str
    command: str | None = None

    def load(self, name: str) -> Any:  # typer's vendored click types are private
        import typer
        import typer.main  # the Typer -> click conversion, needed only here

        app = getattr(importlib.import_module(self.module), self.attribute)
        if not isinstance(app, typer.Typer):  # a register(app) function: take what it adds
            app, register = typer.Typer(), app
            register(app)
        plain_groups(app)
        app.rich_markup_mode = None  # plain help, as the root's (cli/main.py says why)
        group = typer.main.get_group(app)
        loaded = group if self.command is None else group.commands[self.command]
        loaded.name = name
        return loaded


def plain_groups(app: Any) -> None:
    """Make ``app`` and the sub-apps added to it :class:`CommandGroup`s, unless they name a
    group class of their own."""
    if not isinstance(app.info.cls, type):  # typer's placeholder for "not set"
        app.info.cls = CommandGroup
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_groups(group.typer_instance)


class CommandGroup(TyperGroup):
    """A Typer group whose ``--help`` flag is a plain bool (the module docstring says why)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False  # the flag's value when not given: help is not shown
        return option


class LazyGroup(CommandGroup):
    """A Typer group with subcommands imported on demand (``lazy``: name -> where), listed
    after the eagerly registered ones, in the order given."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        """Plain commands first, then groups (Typer's order), each in registration order."""
        names = super().list_commands(ctx) + [n for n in self.lazy if n not in self.commands]
        return sorted(names, key=lambda n: self._is_group(ctx, n))

    def _is_group(self, ctx: Any, name: str) -> bool:
        if name in self.commands:
            return hasattr(self.commands[name], "commands")
        return self.lazy[name].command is None

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.lazy:
            found = self.lazy[cmd_name].load(cmd_name)
            self.add_command(found, cmd_name)
        return found

