"""What a database backup command loads at start-up: no ``cryptography`` unless an off-site
tier is configured (its encryption is the only user), checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import autograph.config, autograph.secrets
from autograph.cli import backup
from autograph.dr.postgres import DatabaseBackupManager
print(",".join(sorted(m for m in ("cryptography", "autograph.dr.storage.crypto")
                      if m in sys.modules)))
"""


def test_the_db_backup_path_does_not_import_cryptography() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""

