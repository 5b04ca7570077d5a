"""Short-lived admin sessions exchanged for the break-glass key, so a browser never keeps it.

``POST /api/admin/session`` with the key answers a random token in an HttpOnly, SameSite=Strict
cookie; the server keeps only its sha256 and expiry in ``secrets/admin-sessions.json`` (0600).
A file rather than Redis: the break-glass path must work with Redis and PostgreSQL down, and
several gateway processes must share the sessions.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

COOKIE = "autograph_admin"
FILE_NAME = "admin-sessions.json"
TOKEN_PREFIX = "ags_"
DEFAULT_TTL = timedelta(minutes=30)


class AdminSession(BaseModel):
    """One session: an id to name it in the audit log (never the token) and its expiry."""

    id: str
    created_at: datetime
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@contextmanager
def _locked(folder: Path) -> Iterator[dict[str, dict[str, str]]]:
    """The sessions table under an exclusive lock, written back (atomically) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    with open(folder / (FILE_NAME + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            table = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            table = {}
        before = dict(table)
        yield table
        if table != before:
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(table, handle)
            os.replace(tmp, path)


def _drop_expired(table: dict[str, dict[str, str]], now: datetime) -> None:
    for key in [k for k, v in table.items() if datetime.fromisoformat(v["expires_at"]) <= now]:
        del table[key]


def create(folder: Path, ttl: timedelta = DEFAULT_TTL,
           now: datetime | None = None) -> tuple[str, AdminSession]:
    """A new session: its token (shown once, to the caller) and its record."""
    now = now or datetime.now(UTC)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session = AdminSession(id=secrets.token_hex(4), created_at=now, expires_at=now + ttl)
    with _locked(folder) as table:
        _drop_expired(table, now)
        table[_digest(token)] = session.model_dump(mode="json")
    return token, session


def lookup(folder: Path, token: str, now: datetime | None = None) -> AdminSession | None:
    """The live session of ``token``, or None (unknown, expired or malformed)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    now = now or datetime.now(UTC)
    path = folder / FILE_NAME
    try:
        record = json.loads(path.read_text()).get(_digest(token))
    except (OSError, ValueError, AttributeError):
        return None
    if record is None:
        return None
    session = AdminSession.model_validate(record)
    return session if session.expires_at > now else None


def revoke(folder: Path, token: str) -> bool:
    """End a session; True if it was live."""
    with _locked(folder) as table:
        return table.pop(_digest(token), None) is not None
