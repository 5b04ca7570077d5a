"""Credentials generated at first start into HOME/secrets (mode 0600), or taken from settings."""

from __future__ import annotations

import os
import secrets as _random
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from autograph.config import Settings


def read_or_create(path: Path, length: int = 32, value: str | None = None) -> str:
    """Return the secret stored at ``path``, creating it (mode 0600) if missing.

    ``value`` forces the content when the file does not exist yet.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    secret = value if value is not None else _random.token_urlsafe(length)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


@dataclass(frozen=True)
class Credentials:
    """Every credential the stack uses. Never logged; ``repr`` hides the values."""

    pg_password: str
    redis_password: str
    s3_access_key: str
    s3_secret_key: str
    admin_api_key: str
    backup_s3_access_key: str
    backup_s3_secret_key: str
    pg_replication_password: str = ""

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"


def _setting(value: object) -> str | None:
    secret = getattr(value, "get_secret_value", None)
    return secret() if secret else None


def _optional(path: Path) -> str | None:
    """A secret file that may be absent (a mounted Secret with only some keys)."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def load_credentials(settings: Settings) -> Credentials:
    """Load (creating on first use) the stack's credentials."""
    folder = settings.secrets_dir
    s3_access = _setting(settings.s3_access_key) or read_or_create(
        folder / "s3-access-key", 12
    )
    s3_secret = _setting(settings.s3_secret_key) or read_or_create(folder / "s3-secret-key")
    pg_password = _setting(settings.pg_password) or read_or_create(folder / "pg-password")
    redis_url = _setting(settings.redis_url)
    return Credentials(
        pg_password=pg_password,
        redis_password=(urlsplit(redis_url).password if redis_url else None)
        or read_or_create(folder / "redis-password"),
        s3_access_key=s3_access,
        s3_secret_key=s3_secret,
        admin_api_key=_setting(settings.admin_api_key)
        or read_or_create(folder / "admin-api-key"),
        backup_s3_access_key=_setting(settings.backup_s3_access_key)
        or _optional(folder / "backup-s3-access-key") or s3_access,
        backup_s3_secret_key=_setting(settings.backup_s3_secret_key)
        or _optional(folder / "backup-s3-secret-key") or s3_secret,
        pg_replication_password=_setting(settings.pg_replication_password)
        or _optional(folder / "pg-replication-password") or pg_password,
    )
