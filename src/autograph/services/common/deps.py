"""FastAPI dependencies as ``Annotated`` aliases: settings, resources, principals.

``AdminDep`` accepts the break-glass admin API key (constant-time comparison, checked before
Redis is touched, so it works with PostgreSQL and Redis down) or an admin user's session.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import redis.exceptions
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from autograph.config import Settings, load_settings
from autograph.errors import DependencyDown
from autograph.services.common import admin_sessions
from autograph.services.common.resources import Resources
from autograph.services.common.security import (
    BREAK_GLASS,
    Forbidden,
    Principal,
    Unauthorized,
    read_session,
)

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A session token from POST /api/auth/login, or the admin API key "
                "(admin routes only).",
)


def get_resources(request: Request) -> Resources:
    """The app's Resources (created on first use when the app was not built by create_app)."""
    resources = getattr(request.app.state, "resources", None)
    if resources is None:
        settings = getattr(request.app.state, "settings", None) or load_settings()
        resources = Resources(settings)
        request.app.state.resources = resources
    return resources


def get_settings(request: Request) -> Settings:
    """The Settings the app was built with."""
    return get_resources(request).settings


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_db(resources: ResourcesDep) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """The PostgreSQL connection pool (use ``async with pool.connection() as conn``)."""
    return await resources.db()


DbDep = Annotated[AsyncConnectionPool[AsyncConnection[Any]], Depends(get_db)]


def get_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> str:
    """The bearer token of the request; Unauthorized (401) when there is none."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return credentials.credentials


TokenDep = Annotated[str, Depends(get_token)]


async def _session(resources: Resources, token: str) -> Principal:
    try:
        principal = await read_session(resources.redis, token)
    except redis.exceptions.RedisError:
        raise DependencyDown(
            "Redis is unavailable, sessions cannot be checked (admin routes accept the "
            "admin API key)"
        ) from None
    if principal is None:
        raise Unauthorized("invalid or expired token")
    return principal


async def get_current_user(resources: ResourcesDep, token: TokenDep) -> Principal:
    """The user of a session token. Unauthorized (401) for an unknown, expired or API-key
    token; DependencyDown (503) when Redis is unreachable."""
    if _is_api_key(resources, token):
        raise Unauthorized("the admin API key is accepted on admin routes only; log in")
    return await _session(resources, token)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def _is_api_key(resources: Resources, token: str) -> bool:
    return hmac.compare_digest(token.encode(), resources.creds.admin_api_key.encode())


def _admin_session(resources: Resources, token: str) -> Principal | None:
    session = admin_sessions.lookup(resources.settings.secrets_dir, token)
    if session is None:
        return None
    return Principal(user_id=None, email=f"admin session {session.id} (break-glass key)",
                     role="admin", via="api_key")


def _cookie_token(request: Request) -> str | None:
    """The admin session cookie; unsafe methods must also carry ``X-Requested-With`` (a header
    a cross-site form cannot send), which with SameSite=Strict keeps CSRF out."""
    token = request.cookies.get(admin_sessions.COOKIE)
    if token and request.method not in ("GET", "HEAD") \
            and request.headers.get("x-requested-with") != "autograph":
        raise Forbidden("a cookie-authenticated change needs the X-Requested-With header")
    return token


async def get_admin(
    request: Request, resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """An admin principal: the admin API key, an admin session exchanged for it (bearer or
    cookie), or an admin user's session.

    Unauthorized (401) for a missing/invalid token, Forbidden (403) for a non-admin user,
    DependencyDown (503) when a session must be checked and Redis is unreachable.
    """
    token = credentials.credentials if credentials is not None else _cookie_token(request)
    if not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    if _is_api_key(resources, token):
        principal = BREAK_GLASS
    elif token.startswith(admin_sessions.TOKEN_PREFIX):
        found = _admin_session(resources, token)
        if found is None:
            raise Unauthorized("invalid or expired admin session")
        principal = found
    else:
        principal = await _session(resources, token)
        if not principal.is_admin:
            raise Forbidden("admin role required")
    request.state.admin_actor = principal.email
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]
