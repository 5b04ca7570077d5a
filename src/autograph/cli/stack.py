"""Stack commands: up, down, ps, start, stop, restart, logs (the plan's docker-compose verbs)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from autograph.cli.output import console, emit_json

if TYPE_CHECKING:
    from autograph.stack.lifecycle import Stack

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
Names = Annotated[list[str], typer.Argument(help="component names (see `autograph ps`)")]


def _stack() -> Stack:
    # Imported here, not at the top: keeps start-up fast for every other command.
    from autograph.config import load_settings
    from autograph.stack.lifecycle import Stack

    return Stack(load_settings())


def up() -> None:
    """Start the whole stack in priority order and wait until every component is healthy."""
    stack = _stack()
    with console.status("starting the stack") as status:
        started = stack.up(progress=lambda msg: status.update(msg))
    console.print(f"stack healthy ({len(started)} started, home {stack.settings.home_dir})")


def down() -> None:
    """Stop every component in reverse priority order."""
    stack = _stack()
    with console.status("stopping the stack") as status:
        stack.down(progress=lambda msg: status.update(msg))
    console.print("stack stopped")


def ps(json_output: JsonOpt = False) -> None:
    """Show each component's state, pid, uptime and health."""
    rows = _stack().ps()
    if json_output:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table("component", "priority", "state", "pid", "uptime", "health", "ports")
    for row in rows:
        uptime = f"{row.uptime_seconds:.0f}s" if row.uptime_seconds is not None else "-"
        health = "[green]healthy[/]" if row.healthy else f"[red]down[/] {row.detail[:40]}"
        table.add_row(row.name, str(row.priority), row.state, str(row.pid or "-"), uptime,
                      health, ",".join(map(str, row.ports)))
    console.print(table)


def start(names: Names) -> None:
    """Start components (and wait on their health)."""
    stack = _stack()
    for name in names:
        stack.start(name)
        console.print(f"{name} started")


def stop(names: Names) -> None:
    """Stop components."""
    stack = _stack()
    for name in names:
        stack.stop(name)
        console.print(f"{name} stopped")


def restart(names: Names) -> None:
    """Restart components."""
    stack = _stack()
    for name in names:
        stack.restart(name)
        console.print(f"{name} restarted")


def logs(
    name: Annotated[str, typer.Argument(help="component name")],
    lines: Annotated[int, typer.Option("--tail", "-n", help="lines to show")] = 100,
) -> None:
    """Show the last lines of one component's log."""
    path = _stack().log_file(name)
    if not os.path.exists(path):
        console.print(f"no log yet at {path}")
        return
    with open(path, errors="replace") as handle:
        for line in handle.readlines()[-lines:]:
            print(line, end="")


def register(app: typer.Typer) -> None:
    """Attach the stack commands to the top-level app."""
    for command in (up, down, ps, start, stop, restart, logs):
        app.command()(command)
