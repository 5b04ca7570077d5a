"""Users in PostgreSQL: argon2id password hashes, registration, login, the first admin."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import class_row

from autograph.errors import Conflict, NotFound
from autograph.secrets import read_or_create
from autograph.services.auth.throttle import LoginThrottle
from autograph.services.common.resources import Resources
from autograph.services.common.security import Unauthorized

log = logging.getLogger("autograph.auth")

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters

Pool = Any  # psycopg_pool.AsyncConnectionPool[AsyncConnection[Any]]


@dataclass(frozen=True)
class User:
    """A row of ``users``."""

    id: int
    email: str
    full_name: str | None
    role: str
    created_at: datetime
    password_hash: str = ""


_COLUMNS = "id, email, full_name, role, created_at, password_hash"


async def hash_password(password: str) -> str:
    """An argon2id hash (computed in a thread: it is deliberately slow)."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``."""

    def check() -> bool:
        try:
            return _HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


async def create_user(pool: Pool, email: str, password: str, full_name: str | None,
                      role: str = "user") -> User:
    """Insert a user. Conflict (409) when the e-mail is taken (case-insensitively)."""
    password_hash = await hash_password(password)
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=class_row(User))
            await cursor.execute(
                f"INSERT INTO users (email, password_hash, full_name, role) "
                f"VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
                (email, password_hash, full_name, role))
            user = await cursor.fetchone()
    except psycopg.errors.UniqueViolation:
        raise Conflict("an account with this e-mail already exists") from None
    assert user is not None
    return user


async def get_user(pool: Pool, user_id: int) -> User:
    """The user with ``user_id``; NotFound (404) if it was deleted."""
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=class_row(User))
        await cursor.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", (user_id,))
        user = await cursor.fetchone()
    if user is None:
        raise NotFound("user not found")
    return user


async def list_users(pool: Pool, limit: int, offset: int) -> tuple[list[User], int]:
    """A page of users by id, and the total count."""
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=class_row(User))
        await cursor.execute(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT %s OFFSET %s",
                             (limit, offset))
        users = await cursor.fetchall()
        count_row = await (await conn.execute("SELECT count(*) FROM users")).fetchone()
    return users, int(count_row[0]) if count_row else 0


@functools.cache
def dummy_hash() -> str:
    """The hash an unknown e-mail's password is checked against (so its answer takes as long
    as a known one's). Made once, not at import: an argon2 hash costs ~0.1 s of CPU, which a
    start would pay before answering its health check (the auth app makes it in a worker
    thread at start-up; a login that comes first makes it itself)."""
    return _HASHER.hash("autograph-timing-equaliser")


async def authenticate(resources: Resources, email: str, password: str,
                       client: str = "") -> User:
    """The user whose e-mail and password match, for a login from address ``client``.

    Unauthorized (401) otherwise (same answer and similar time for an unknown e-mail);
    TooManyAttempts (429 with Retry-After) while :mod:`throttle` makes this attempt wait.
    """
    throttle = LoginThrottle(resources.redis, email, client)
    await throttle.admit()
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=class_row(User))
        await cursor.execute(f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower(%s)",
                             (email,))
        user = await cursor.fetchone()
    expected = user.password_hash if user else await asyncio.to_thread(dummy_hash)
    matched = await verify_password(expected, password)
    if user is None or not matched:
        await throttle.failed()
        raise Unauthorized("invalid e-mail or password")
    await throttle.succeeded()
    if _HASHER.check_needs_rehash(user.password_hash):
        new_hash = await hash_password(password)
        async with pool.connection() as conn:
            await conn.execute("UPDATE users SET password_hash = %s, updated_at = now() "
                               "WHERE id = %s", (new_hash, user.id))
    return user


async def ensure_first_admin(resources: Resources) -> bool:
    """Create the first admin user when no admin exists; True if one was created.

    The e-mail is ``admin_email``; the password ``admin_password``, or one generated once
    into HOME/secrets/admin-password (mode 0600).
    """
    settings = resources.settings
    conninfo = resources.conninfo()
    async with await psycopg.AsyncConnection.connect(**conninfo) as conn:
        row = await (await conn.execute(
            "SELECT 1 FROM users WHERE role = 'admin' LIMIT 1")).fetchone()
        if row:
            return False
        given = settings.admin_password.get_secret_value() if settings.admin_password else None
        password = given or read_or_create(settings.secrets_dir / "admin-password", 24)
        password_hash = await hash_password(password)
        cursor = await conn.execute(
            "INSERT INTO users (email, password_hash, full_name, role) "
            "VALUES (%s, %s, 'Administrator', 'admin') "
            "ON CONFLICT ((lower(email))) DO NOTHING RETURNING id",
            (settings.admin_email, password_hash))
        created = await cursor.fetchone() is not None
    if created:
        log.info("created the first admin user", extra={"email": settings.admin_email})
    else:
        log.warning("no admin user and %s is taken by a non-admin account",
                    settings.admin_email)
    return created


async def prepare_auth_database(resources: Resources) -> None:
    """Make sure an admin user exists (run once the schema is known to be current)."""
    await ensure_first_admin(resources)
