"""``autograph migrate``: bring the database schema up to date (the one migration runner)."""

from __future__ import annotations

from typing import Annotated

import typer

from autograph.cli.output import console, emit_json

HELP = (
    "Apply the pending schema migrations to the application database, in order.\n\n"
    "Idempotent: a current schema is left as it is. Safe beside a running stack and beside "
    "another run (a PostgreSQL advisory lock serialises them; each migration is applied once, "
    "in its own transaction). `autograph up` and every restore or recovery run it before "
    "services start; run it yourself after restoring a dump by hand (`pg_restore`) or when a "
    "service answers 503 saying the schema is behind.\n\n"
    "Exit codes: 0 done (with --status: reported), 5 PostgreSQL unreachable, 6 a migration "
    "failed (rolled back; those before it stay applied) or an applied one was edited."
)


def migrate(
    status_only: Annotated[bool, typer.Option(
        "--status", help="only report the applied and pending migrations")] = False,
    database: Annotated[str | None, typer.Option(
        "--database", help="another database on the same server (default: the application "
                           "database, AUTOGRAPH_PG_DATABASE)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")
                           ] = False,
) -> None:
    """Apply the pending migrations, or report them (the help text is ``HELP``)."""
    from autograph.config import load_settings
    from autograph.connections import pg_kwargs
    from autograph.dr.models import validate_name
    from autograph.schema import runner
    from autograph.secrets import load_credentials

    settings = load_settings()
    if database is not None:
        validate_name(database, "database name")
    conninfo = pg_kwargs(settings, load_credentials(settings), database)
    if status_only:
        found = runner.status(conninfo)
        applied: list[int] = []
    else:
        run = runner.migrate(conninfo)
        found, applied = run.status, run.applied_now
    if json_output:
        emit_json({"applied_now": applied, "status": found.model_dump(mode="json")})
        return
    names = {p.version: p.name for p in found.pending}
    if applied:
        console.print(f"applied {len(applied)} migration(s): "
                      + ", ".join(str(v) for v in applied))
    if found.pending:
        console.print("pending: " + ", ".join(f"{v} ({n})" for v, n in names.items()))
    if found.unknown:
        console.print("applied by newer code (unknown here): "
                      + ", ".join(map(str, found.unknown)))
    state = "behind" if found.behind else "current"
    console.print(f"schema of {found.database} {state} at version {found.version} "
                  f"(this code knows up to {found.head})")


def register(app: typer.Typer) -> None:
    """Attach ``migrate`` to the top-level app."""
    app.command(help=HELP)(migrate)
