"""Principals, opaque session tokens in Redis, and the 401/403 errors of the auth edge."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

import redis.asyncio as aioredis

from autograph.errors import AutographError

SESSION_PREFIX = "autograph:session:"


class Unauthorized(AutographError):
    """No token, an unknown or expired token, or wrong credentials."""

    http_status = 401
    exit_code = 8


class Forbidden(AutographError):
    """A valid principal without the role the route needs."""

    http_status = 403
    exit_code = 8


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user's session, or the break-glass admin API key (no user id)."""

    user_id: int | None
    email: str
    role: Literal["user", "admin"]
    via: Literal["session", "api_key"] = "session"

    @property
    def is_admin(self) -> bool:
        """True for admin users and the admin API key."""
        return self.role == "admin"


BREAK_GLASS = Principal(user_id=None, email="admin-api-key", role="admin", via="api_key")


def session_key(token: str) -> str:
    """The Redis key of a session: a digest of the token, so Redis never holds tokens."""
    return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()


async def create_session(redis: aioredis.Redis, principal: Principal, ttl_seconds: int) -> str:
    """Store a new session for ``principal`` with a TTL and return its opaque token."""
    token = secrets.token_urlsafe(32)
    await redis.set(session_key(token), json.dumps(asdict(principal)), ex=ttl_seconds)
    return token


async def read_session(redis: aioredis.Redis, token: str) -> Principal | None:
    """The principal of a live session, or None for an unknown/expired token."""
    if not token or len(token) > 512:
        return None
    raw = await redis.get(session_key(token))
    if raw is None:
        return None
    data = json.loads(raw)
    return Principal(user_id=data["user_id"], email=data["email"], role=data["role"],
                     via="session")


async def delete_session(redis: aioredis.Redis, token: str) -> bool:
    """End a session; True if it existed."""
    return bool(await redis.delete(session_key(token)))
