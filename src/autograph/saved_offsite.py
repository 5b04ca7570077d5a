"""The off-site store's settings as a machine recovery leaves them in ``HOME/secrets``, so the
next ``up`` keeps shipping there without AUTOGRAPH_OFFSITE_* being set again (read by
:func:`autograph.config.load_settings`; written by
:func:`autograph.dr.kit.offsite.save_offsite`)."""

from __future__ import annotations

import json
from pathlib import Path

SAVED_OFFSITE = "offsite.json"
"""The file's name in the secrets folder (0600)."""
OFFSITE_FIELDS = ("offsite_s3_endpoint", "offsite_s3_region", "offsite_s3_bucket",
                  "offsite_s3_prefix", "offsite_s3_access_key", "offsite_s3_secret_key",
                  "offsite_encryption", "offsite_key")


def saved_offsite(secrets_dir: Path) -> dict[str, object]:
    """The saved off-site settings, or nothing (no file, or one that cannot be read)."""
    try:
        saved = json.loads((secrets_dir / SAVED_OFFSITE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or not saved.get("offsite_s3_endpoint"):
        return {}
    return {name: saved[name] for name in OFFSITE_FIELDS if saved.get(name) is not None}
