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
    kit_credentials,
    kit_settings,
    probe,
    read_marker,
    write_marker,
)
from autograph.dr.models import Kind
from autograph.errors import InvalidInput, OperationFailed
from autograph.secrets import Credentials, read_or_create

DEPLOYMENT_FILE = "deployment-id"
KEY_SUFFIX = ".key"  # HOME/secrets/<key id>.key: an encryption key of the off-site copies


def deployment_id(settings: Settings) -> str:
    """This deployment's id (``secrets/deployment-id``, made once)."""
    return read_or_create(settings.secrets_dir / DEPLOYMENT_FILE, value=uuid.uuid4().hex)


def build_kit(settings: Settings, creds: Credentials, clock: Clock = utc_now) -> RecoveryKit:
    """The kit of this deployment. Raises InvalidInput when there is no off-site store,
    DependencyDown when it does not answer (a kit that cannot reach it is no kit)."""
    url = endpoint(settings)
    if url is None:
        raise InvalidInput("no off-site store configured (AUTOGRAPH_BACKUP_S3_ENDPOINT): "
                           "a kit without one could restore nothing")
    ident = deployment_id(settings)
    probe(settings, creds)
    marked = read_marker(settings, creds)
    if marked is not None and marked != ident:
        raise InvalidInput(f"the off-site store at {url} holds deployment {marked}'s backups, "
                           f"not this one's ({ident}): use a bucket of its own")
    write_marker(settings, creds, ident)
    folder = settings.secrets_dir
    secrets = {p.name: p.read_text().strip() for p in sorted(folder.iterdir())
               if p.is_file()} if folder.is_dir() else {}
    keys = [KitKey(key_id=name[: -len(KEY_SUFFIX)], key=value)
            for name, value in secrets.items() if name.endswith(KEY_SUFFIX)]
    return RecoveryKit(
        deployment_id=ident, created_at=clock(),
        offsite=OffsiteStore(endpoint=url, region=settings.s3_region,
                             bucket_database=settings.backup_bucket_database,
                             bucket_objects=settings.backup_bucket_objects,
                             access_key=creds.backup_s3_access_key,
                             secret_key=creds.backup_s3_secret_key),
        encryption=keys, secrets=secrets,
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
    creds = kit_credentials(kit, settings)
    probe(settings, creds)
    marked = read_marker(settings, creds)
    if marked is not None and marked != kit.deployment_id:
        raise InvalidInput(f"the kit is for deployment {kit.deployment_id}, but the off-site "
                           f"store at {endpoint(settings)} holds deployment {marked}'s backups")
    listed, problems = {}, []
    kinds: tuple[Kind, ...] = ("database", "basebackup", "bucket")
    for kind in kinds:
        catalog = open_catalog(settings, creds, kind)
        found = catalog.list(tiers=("s3",))
        problems += found.problems + [f"{t}: {why}" for t, why in found.unreachable.items()]
        listed[kind] = found.backups
    every = [e for entries in listed.values() for e in entries]
    if not every:
        raise OperationFailed(f"the off-site store at {endpoint(settings)} holds no readable "
                              "backup manifest" + (f" ({problems[0]})" if problems else ""))
    buckets = {b: _newest([e for e in listed["bucket"] if e.source == b], "created_at")
               for b in kit.restored_data.app_buckets}
    per_tier, _down = SnapshotStore(settings, creds).names()
    for bucket in kit.restored_data.app_buckets:
        names = merged({"s3": per_tier.get("s3", [])}, bucket)
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
    """Write the kit's secrets into the home's ``secrets/`` (0600); return the files written.

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
    return written
