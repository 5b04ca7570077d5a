"""After a restore onto a machine whose secrets died with the old one, the admin account gets
a new password (saved like at first start) so the admin, and the recovery's verify step, can
log in; a password that is still known is never touched."""

from __future__ import annotations

import stat
from pathlib import Path

from argon2 import PasswordHasher
from pydantic import SecretStr

from autograph.dr.recovery.accounts import reset_lost_admin_password
from autograph.dr.recovery.integrity import connect
from autograph.stack.lifecycle import Stack
from dbbackups import isolated_settings

USERS = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, password_hash text NOT NULL,
                    role text NOT NULL, updated_at timestamptz);
INSERT INTO users (email, password_hash, role) VALUES
  ('Admin@Autograph.Local', 'old-machine-hash', 'admin'),
  ('someone@example.com', 'their-hash', 'user');
"""


def test_a_lost_admin_password_is_replaced_and_saved(infra_stack: Stack,
                                                     tmp_path: Path) -> None:
    with isolated_settings(infra_stack, tmp_path) as isolated:
        settings = isolated.model_copy(update={"home": tmp_path / "home"})
        with connect(settings, infra_stack.creds) as conn:
            conn.execute(USERS)
        done = reset_lost_admin_password(settings, infra_stack.creds)
        path = settings.secrets_dir / "admin-password"
        assert done is not None and str(path) in done
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with connect(settings, infra_stack.creds) as conn:
            hashes = dict(conn.execute("SELECT email, password_hash FROM users").fetchall())
        assert PasswordHasher().verify(hashes["Admin@Autograph.Local"],
                                       path.read_text().strip())
        assert hashes["someone@example.com"] == "their-hash"
        # Known now (the file), or set in the settings: nothing more is changed.
        assert reset_lost_admin_password(settings, infra_stack.creds) is None
        path.unlink()
        given = settings.model_copy(update={"admin_password": SecretStr("from-settings")})
        assert reset_lost_admin_password(given, infra_stack.creds) is None
        assert not path.exists()
