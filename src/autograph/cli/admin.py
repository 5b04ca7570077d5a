"""Admin commands: ``autograph admin token`` prints a bearer token for the admin API."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from autograph.cli.output import emit_json
from autograph.config import load_settings
from autograph.secrets import load_credentials

admin_app = typer.Typer(help="Administration: tokens for the admin API.", no_args_is_help=True)


@admin_app.command("token")
def token(
    api_key: Annotated[bool, typer.Option(
        "--api-key",
        help="print the break-glass admin API key instead (no login; works while "
             "PostgreSQL and Redis are down)")] = False,
    email: Annotated[str | None, typer.Option(
        help="log in as this user (default: AUTOGRAPH_ADMIN_EMAIL)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin",
        help="read the password from stdin (default: AUTOGRAPH_ADMIN_PASSWORD, else "
             "HOME/secrets/admin-password)")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Log in as the admin and print a session token for `Authorization: Bearer …`.

    Example: curl -H "Authorization: Bearer $(autograph admin token)" :8080/api/admin/backup/list
    """
    settings = load_settings()
    if api_key:
        key = load_credentials(settings).admin_api_key
        if json_output:
            emit_json({"access_token": key, "token_type": "bearer", "kind": "api_key"})
        else:
            print(key)
        return
    # Imported here: the HTTP and Redis clients it brings are not needed by other commands.
    from autograph.services.auth.client import admin_password, login

    user = email or settings.admin_email
    password = sys.stdin.readline().rstrip("\n") if password_stdin else admin_password(settings)
    answer = login(settings, user, password)
    if json_output:
        emit_json({**answer, "kind": "session", "email": user})
    else:
        print(answer["access_token"])


def register(app: typer.Typer) -> None:
    """Attach the ``admin`` command group to the main CLI."""
    app.add_typer(admin_app, name="admin")
