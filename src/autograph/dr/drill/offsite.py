"""The drill sandbox's off-site store, and the kit the ``machine`` scenario recovers with.

Every sandbox gets a second S3 server of its own (SeaweedFS, its own home folder beside the
sandbox's, its own ports and credentials) as its off-site tier (``AUTOGRAPH_OFFSITE_S3_*``,
everything encrypted, WAL shipped): a failure
that takes the sandbox's S3 server (``complete``) or its whole home (``machine``) leaves it
standing, as a store in another failure domain would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograph.config import Settings, load_settings
from autograph.stack.lifecycle import Stack

_SERVERS: dict[str, Stack] = {}  # sandbox home -> its off-site server's stack


def start_offsite(base: Settings, sandbox_home: Path, s3_port: int) -> dict[str, Any]:
    """Start an S3-only stack in a folder beside ``sandbox_home`` on ``s3_port`` (a block of
    8 free ports); return the settings that point a sandbox's backups at it."""
    # named after the sandbox (its path is a prefix of this one), beside it, never inside it
    home = Path(tempfile.mkdtemp(prefix=f"{sandbox_home.name}-offsite-",
                                 dir=sandbox_home.parent))
    values = {name: getattr(base, name) for name in type(base).model_fields}
    values.update({"home": home, "s3_port": s3_port, "backup_dir": None, "s3_endpoint": None,
                   "s3_access_key": None, "s3_secret_key": None, "backup_s3_endpoint": None,
                   "backup_s3_access_key": None, "backup_s3_secret_key": None,
                   "services": (), "app_buckets": (), "offsite_s3_endpoint": None})
    stack = Stack(load_settings(**values))
    try:
        stack.up(only=["s3"])
    except BaseException:  # an interrupted drill (stopped from the console) too
        stop_offsite(stack)
        raise
    _SERVERS[str(sandbox_home)] = stack
    from autograph.s3.boto import app_client, ensure_buckets

    bucket = base.offsite_s3_bucket
    ensure_buckets(app_client(stack.settings, stack.creds), [bucket])
    return {"offsite_s3_endpoint": stack.settings.s3_url, "offsite_s3_bucket": bucket,
            "offsite_s3_prefix": "", "offsite_s3_region": stack.settings.s3_region,
            "offsite_s3_access_key": stack.creds.s3_access_key,
            "offsite_s3_secret_key": stack.creds.s3_secret_key, "offsite_key": None,
            "offsite_encryption": True}


def offsite_of(sandbox_home: Path) -> Stack | None:
    """The off-site server started for a sandbox, if any."""
    return _SERVERS.get(str(sandbox_home))


def stop_offsite(stack: Stack) -> None:
    """Stop an off-site server and delete its folder (SeaweedFS's sockets too)."""
    with contextlib.suppress(Exception):
        stack.down()
    for port in stack.component("s3").ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                path.unlink()
    shutil.rmtree(stack.settings.home_dir, ignore_errors=True)
    for key, value in list(_SERVERS.items()):
        if value is stack:
            del _SERVERS[key]


def ships_wal(settings: Settings) -> bool:
    """True when WAL segments reach the off-site store (its tier's shipper sends each one as
    it closes, at least every ``wal_switch_seconds``); without that, a lost machine takes
    every segment since the newest base backup along."""
    return bool(settings.offsite_s3_endpoint) and settings.wal_switch_seconds > 0


@dataclass(frozen=True)
class DrillKit:
    """A kit exported before the failure, kept outside the home that is lost."""

    path: Path
    passphrase: str = ""

    def remove(self) -> None:
        """Delete the kit and its folder."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


def export_kit(stack: Stack) -> DrillKit:
    """Export the sandbox's kit (sealed with a random passphrase) into a 0700 folder of its
    own, as an operator would before the failure."""
    from autograph.dr.kit.check import build_kit
    from autograph.dr.kit.document import seal, write_kit

    folder = Path(tempfile.mkdtemp(prefix="autograph-kit-"))
    os.chmod(folder, 0o700)
    kit = DrillKit(folder / "recovery-kit.json", secrets.token_urlsafe(24))
    write_kit(kit.path, seal(build_kit(stack.settings), kit.passphrase))
    return kit
