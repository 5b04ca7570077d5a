"""Making, checking and installing a recovery kit.

- :func:`build_kit` gathers the kit from a running deployment's settings and secrets (and
  records the deployment in the off-site store, so a kit of another one is recognised);
- :func:`verify_kit` opens the off-site store with nothing but the kit, reads the manifests
  and says what can be restored and to when;
- :func:`install_kit` writes the kit's secrets into a bare home, after checking that the home
  is not another deployment's. Nothing is written when a check fails.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.kit.document import KitKey, OffsiteStore, RecoveryKit, RestoredData
from autograph.dr.kit.offsite import (
    endpoint,
    kit_settings,
    probe,
    read_marker,
    save_offsite,
    write_marker,
)
from autograph.dr.models import Kind
from autograph.errors import InvalidInput, OperationFailed
from autograph.secrets import read_or_create

DEPLOYMENT_FILE = "deployment-id"


def deployment_id(settings: Settings) -> str:
    """This deployment's id (``secrets/deployment-id``, made once)."""
    return read_or_create(settings.secrets_dir / DEPLOYMENT_FILE, value=uuid.uuid4().hex)


def build_kit(settings: Settings, clock: Clock = utc_now) -> RecoveryKit:
    """The kit of this deployment. Raises InvalidInput when there is no off-site tier or its
    store holds another deployment's backups, DependencyDown when it does not answer (a kit
    that cannot reach it is no kit), ConfigError when its credentials are missing."""
    from autograph.dr.storage.offsite import offsite_credentials, offsite_key

    url = endpoint(settings)
    if url is None:
        raise InvalidInput("no off-site tier configured (AUTOGRAPH_OFFSITE_S3_ENDPOINT): "
                           "a kit without one could restore nothing")
    ident = deployment_id(settings)
    probe(settings)
    marked = read_marker(settings)
    if marked is not None and marked != ident:
        raise InvalidInput(f"the off-site store at {url} holds deployment {marked}'s backups, "
                           f"not this one's ({ident}): give this one a prefix of its own")
    write_marker(settings, ident)
    access, secret = offsite_credentials(settings)
    key = offsite_key(settings)
    folder = settings.secrets_dir
    secrets = {p.name: p.read_text().strip() for p in sorted(folder.iterdir())
               if p.is_file() and not p.name.startswith(".")} if folder.is_dir() else {}
    return RecoveryKit(
        deployment_id=ident, created_at=clock(),
        offsite=OffsiteStore(endpoint=url, region=settings.offsite_s3_region,
                             bucket=settings.offsite_s3_bucket,
                             prefix=settings.offsite_s3_prefix,
                             access_key=access, secret_key=secret),
        encryption=[KitKey(key_id=key.key_id, key=key.export().partition(":")[2])]
        if key else [],
        secrets=secrets,
        restored_data=RestoredData(pg_user=settings.pg_user, pg_database=settings.pg_database,
                                   admin_email=settings.admin_email,
                                   app_buckets=list(settings.app_buckets)))


class Restorable(BaseModel):
    """One kind of backup in the off-site store: how many, the newest, and its time."""

    count: int = 0
    newest: str | None = None
    newest_at: datetime | None = None


class KitCheck(BaseModel):
    """What a kit opens: the store, what it can restore, and to when."""

    deployment_id: str
    endpoint: str
    created_at: datetime
    manifest_read: str = Field(description="a manifest read and checked with the kit alone")
    database: Restorable
    base: Restorable
    buckets: dict[str, Restorable]
    restorable_to: datetime | None = Field(
        default=None, description="the newest point the database can be brought back to")
    problems: list[str] = Field(default_factory=list)


def _newest(entries: list[Any], when: str) -> Restorable:
    good = [e for e in entries if e.verification.status == "passed"]
    if not good:
        return Restorable(count=0)
    return Restorable(count=len(good), newest=good[0].name, newest_at=getattr(good[0], when))


def verify_kit(kit: RecoveryKit, base: Settings) -> KitCheck:
    """Open the off-site store with the kit alone and say what it can restore.

    Raises InvalidInput for a kit of another deployment than the store's, DependencyDown when
    the store does not answer or refuses the kit's credentials, OperationFailed when the store
    holds no readable manifest.
    """
    from autograph.dr.buckets.snapshots.store import SnapshotStore, merged, parse_name
    from autograph.dr.catalog import open_catalog

    settings = kit_settings(kit, base)
    probe(settings)
    marked = read_marker(settings)
    if marked is not None and marked != kit.deployment_id:
        raise InvalidInput(f"the kit is for deployment {kit.deployment_id}, but the off-site "
                           f"store at {endpoint(settings)} holds deployment {marked}'s backups")
    listed, problems = {}, []
    kinds: tuple[Kind, ...] = ("database", "basebackup", "bucket")
    for kind in kinds:
        found = open_catalog(settings, None, kind, with_s3=False).list(tiers=("offsite",))
        if "offsite" in found.unreachable:  # e.g. the kit's key cannot open the manifests
            raise OperationFailed(f"the kit cannot read the off-site store at "
                                  f"{endpoint(settings)}: {found.unreachable['offsite']}")
        problems += found.problems
        listed[kind] = found.backups
    every = [e for entries in listed.values() for e in entries]
    if not every:
        raise OperationFailed(f"the off-site store at {endpoint(settings)} holds no readable "
                              "backup manifest" + (f" ({problems[0]})" if problems else ""))
    buckets = {b: _newest([e for e in listed["bucket"] if e.source == b], "created_at")
               for b in kit.restored_data.app_buckets}
    per_tier, _down = SnapshotStore(settings, None, with_s3=False).names()
    for bucket in kit.restored_data.app_buckets:
        names = merged({"offsite": per_tier.get("offsite", [])}, bucket)
        archived = buckets[bucket].newest_at
        if names and (archived is None or parse_name(names[-1])[1] > archived):
            buckets[bucket] = Restorable(count=buckets[bucket].count + len(names),
                                         newest=names[-1], newest_at=parse_name(names[-1])[1])
    base_backups = _newest(listed["basebackup"], "finished_at")
    database = _newest(listed["database"], "created_at")
    points = [p for p in (base_backups.newest_at, database.newest_at) if p is not None]
    return KitCheck(deployment_id=kit.deployment_id, endpoint=str(endpoint(settings)),
                    created_at=kit.created_at, manifest_read=every[0].name,
                    database=database, base=base_backups, buckets=buckets,
                    restorable_to=max(points) if points else None, problems=problems)


def install_kit(kit: RecoveryKit, settings: Settings) -> list[str]:
    """Write the kit's secrets, and its off-site store's settings (``offsite.json``, read by
    later starts), into the home's ``secrets/`` (0600); return the files written.

    Raises InvalidInput, writing nothing, when the home belongs to another deployment or a
    secret's name is not a plain file name.
    """
    folder = settings.secrets_dir
    present = folder / DEPLOYMENT_FILE
    if present.exists() and present.read_text().strip() != kit.deployment_id:
        raise InvalidInput(f"{settings.home_dir} belongs to deployment "
                           f"{present.read_text().strip()}, the kit to {kit.deployment_id}: "
                           "nothing changed")
    bad = [n for n in kit.secrets if Path(n).name != n or n.startswith(".") or not n]
    if bad:
        raise InvalidInput(f"the kit names secrets that are not plain file names: {bad[:3]}")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    written = []
    for name, value in {**kit.secrets, DEPLOYMENT_FILE: kit.deployment_id}.items():
        temporary = folder / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.replace(temporary, folder / name)
        written.append(name)
    if settings.offsite_s3_endpoint:  # later starts ship there without AUTOGRAPH_OFFSITE_*
        written.append(save_offsite(settings).name)
    return written
