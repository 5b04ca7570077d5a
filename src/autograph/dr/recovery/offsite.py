"""The off-site store as recovery sees it: is it there, and where did each restored artifact
come from.

After the loss of the whole machine the off-site store is the only copy left, so the
``machine`` scenario asks it first and stops with its address when it does not answer, rather
than reporting "no backup" later. The off-site store is the off-site
tier (``AUTOGRAPH_OFFSITE_S3_*``, which the recovery kit sets).
"""

from __future__ import annotations

from typing import Any

from autograph.config import Settings
from autograph.dr.kit.offsite import endpoint, probe

__all__ = ["describe_tier", "endpoint", "probe", "sources"]


def describe_tier(settings: Settings, tier: str) -> str:
    """A tier name as a reader of the report needs it (which machine holds it)."""
    if tier == "local":
        return f"local disk ({settings.backups_dir})"
    if tier == "offsite":
        prefix = settings.offsite_s3_prefix
        return (f"off-site store ({endpoint(settings)}, bucket {settings.offsite_s3_bucket}"
                f"{', prefix ' + prefix if prefix else ''})")
    if tier == "s3":
        return f"S3 copy ({settings.backup_s3_endpoint or settings.s3_url})"
    return tier


def sources(settings: Settings, steps: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``{artifact: where it came from}`` for what the recovery restored, from its steps."""
    found: dict[str, str] = {}
    database = steps.get("restore_database") or {}
    if database.get("backup"):
        result = database.get("result") or {}
        if database.get("method") == "physical":
            found[f"database base backup {database['backup']}"] = describe_tier(
                settings, str(result.get("source", "local")))
            fetched = int(result.get("wal_offsite") or 0)
            found["database WAL"] = (
                f"{result.get('wal_segments', 0)} segments up to {result.get('last_segment')}"
                f" ({fetched} from the {describe_tier(settings, 'offsite')}"
                f"{', the rest local' if fetched < int(result.get('wal_segments') or 0) else ''})"
                f", replayed to {result.get('replayed_to')}")
        else:
            found[f"database dump {database['backup']}"] = describe_tier(
                settings, str(result.get("source_location", "local")))
    for bucket, done in ((steps.get("restore_buckets") or {}).get("buckets") or {}).items():
        tiers = done.get("tiers") or ["local"]
        found[f"bucket {bucket} ({done.get('method')} {done.get('backup')})"] = " + ".join(
            describe_tier(settings, tier) for tier in tiers)
    return found
