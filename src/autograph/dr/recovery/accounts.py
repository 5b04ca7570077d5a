"""The restored data made usable with the secrets this machine has now.

A restore brings back the users table of the machine that took the backup. When the admin's
password died with that machine (no ``AUTOGRAPH_ADMIN_PASSWORD``, no ``secrets/admin-password``:
a home lost without a recovery kit), nobody could log in as admin and the plan's "verify" step
could not log in either. The recovery then gives the first admin a new password, written to
``secrets/admin-password`` (0600) like at first start, and says so in its report. An admin
password that is still known is never touched.
"""

from __future__ import annotations

from argon2 import PasswordHasher

from autograph.config import Settings
from autograph.dr.recovery.integrity import connect
from autograph.errors import AutographError
from autograph.secrets import Credentials, read_or_create


def admin_password_known(settings: Settings) -> bool:
    """True when the admin password is set in the settings or kept in the home's secrets."""
    return settings.admin_password is not None or \
        (settings.secrets_dir / "admin-password").exists()


def reset_lost_admin_password(settings: Settings, creds: Credentials) -> str | None:
    """When the admin password is unknown, give the restored admin account a new one (saved
    to ``secrets/admin-password``); return what was done, or None when nothing was needed.

    Raises DependencyDown when PostgreSQL is unreachable; AutographError when the restored
    database has no admin account with the configured e-mail.
    """
    if admin_password_known(settings):
        return None
    with connect(settings, creds) as conn:
        row = conn.execute("SELECT id FROM users WHERE lower(email) = lower(%s) AND "
                           "role = 'admin'", (settings.admin_email,)).fetchone()
        if row is None:
            return None  # no admin yet: the auth service creates one at start
        path = settings.secrets_dir / "admin-password"
        password = read_or_create(path, 24)
        try:
            conn.execute("UPDATE users SET password_hash = %s, updated_at = now() "
                         "WHERE id = %s", (PasswordHasher().hash(password), row[0]))
        except Exception as exc:  # the new secret must not outlive a failed reset
            path.unlink(missing_ok=True)
            raise AutographError(f"could not reset the admin password: {exc}") from None
    return (f"the admin password died with the machine: {settings.admin_email} has a new "
            f"one in {path}")
