"""What the DR core returns: backup manifests, verification results, catalog entries.

One manifest shape for both kinds (``database`` dumps and ``bucket`` archives). Kind-specific
data goes in the named optional fields (``server_version``, ``row_counts``, ``object_count``)
or in ``extra``. The manifest is stored as ``NAME.manifest.json`` beside ``NAME.<ext>`` in every
tier that holds a copy, and is written last: it is the commit point.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

from autograph.errors import InvalidInput

Kind = Literal["database", "bucket", "basebackup", "snapshot"]
"""Every kind of backup; ``KINDS`` are those stored as artifact + manifest in a catalog (bucket
snapshots keep their own index layout, :mod:`autograph.dr.buckets.snapshots.store`)."""
Tier = Literal["local", "s3", "offsite"]
VerificationStatus = Literal["passed", "failed", "not_verified"]
CopyState = Literal["uploaded", "missing", "disabled"]

KINDS: tuple[Kind, ...] = ("database", "bucket", "basebackup")
MANIFEST_SUFFIX = ".manifest.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

StepStatus = Literal["passed", "failed", "skipped"]

ProgressFn = Callable[[str, float | None], None]
"""Progress callback: ``(step description, fraction done 0..1 or None when unknown)``."""


def no_progress(_step: str, _fraction: float | None = None) -> None:
    """A progress callback that ignores everything."""


def jsonable(value: Any) -> Any:
    """``value`` with pydantic models dumped (JSON mode) and dataclasses made dicts, walking
    lists and dicts; other values are left as they are."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def validate_name(name: str, what: str = "backup name") -> str:
    """Return ``name`` if it matches ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$``.

    Raises InvalidInput (400) otherwise: empty, too long, ``/``, ``..`` at the start, unicode …
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = repr(name)[:60] if isinstance(name, str) else type(name).__name__
        raise InvalidInput(
            f"invalid {what} {shown}: use 1-128 characters from A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit"
        )
    return name


class Verification(BaseModel):
    """The outcome of the last verification of a backup (``not_verified`` until one ran)."""

    status: VerificationStatus = "not_verified"
    at: datetime | None = None
    method: str | None = Field(default=None, description="e.g. 'checksum+pg_restore --list'")
    detail: str | None = None
    checks: dict[str, str] = Field(default_factory=dict, description="check name -> result")
    duration_seconds: float | None = Field(default=None, description="set by a restore test")
    compared: str | None = Field(default=None, description="what a restore test compared")


class Manifest(BaseModel):
    """The sidecar ``NAME.manifest.json`` (SPEC §5)."""

    manifest_version: int = 1
    name: str
    kind: Kind
    source: str = Field(description="database name or bucket name")
    format: str = Field(description="'pg_dump -Fc' or 'tar.gz'")
    artifact: str = Field(description="artifact file name, e.g. NAME.dump")
    created_at: datetime
    started_at: datetime
    finished_at: datetime
    size_bytes: int
    sha256: str
    server_version: str | None = None
    row_counts: dict[str, int] | None = None
    object_count: int | None = None
    tags: list[str] = Field(default_factory=list)
    verification: Verification = Field(default_factory=Verification)
    s3_copy: CopyState = "missing"
    s3_error: str | None = None
    extra: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def manifest_key(self) -> str:
        """The manifest's file name in a tier."""
        return manifest_key(self.name)


def manifest_key(name: str) -> str:
    """``NAME.manifest.json``."""
    return name + MANIFEST_SUFFIX


class BackupEntry(Manifest):
    """A backup as listed: its manifest plus the tiers holding a complete copy.

    This is also the public API shape (SPEC §4: name, kind, source, created_at, size_bytes,
    sha256, locations, verification, tags, and more).
    """

    locations: list[Tier] = Field(default_factory=list)

    def manifest(self) -> Manifest:
        """The stored manifest, without the listing-only fields."""
        return Manifest.model_validate(self.model_dump(exclude={"locations"}))


class BackupList(BaseModel):
    """A merged listing, newest first.

    ``unreachable``: tier -> why it could not be read (the listing holds the other tier's
    backups); ``problems``: unreadable manifests and manifests whose artifact is missing.
    """

    backups: list[BackupEntry]
    unreachable: dict[str, str] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)


class StepRecord(BaseModel):
    """One named, timed step of an operation (a backup, restore, recovery or drill): its
    status, a one-line detail, when it started, how long it took, and the data later steps
    read back (``resumed``: recorded by an earlier run of the same operation)."""

    name: str
    status: StepStatus = "passed"
    detail: str = ""
    started_at: datetime
    duration_seconds: float
    data: dict[str, Any] = Field(default_factory=dict)
    resumed: bool = False


class RestoreResult(BaseModel):
    """What a restore did (SPEC §4: backup_name, status, duration_seconds, …)."""

    backup_name: str
    kind: Kind
    status: Literal["completed"] = "completed"
    duration_seconds: float
    source_location: Tier
    target: str
    previous: str | None = Field(default=None, description="kept for rollback, if any")
    steps: list[StepRecord] = Field(default_factory=list)
    extra: dict[str, JsonValue] = Field(default_factory=dict)


class ShipReport(BaseModel):
    """What one pass over a backlog did."""

    area: str
    shipped: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    backlog: list[str] = Field(default_factory=list, description="still not off-site")
    oldest_backlog_at: datetime | None = None
    unreachable: str | None = None



Scenario = Literal["complete", "database", "objects", "machine"]
"""The plan's disaster scenarios, shared by recovery and the drill; ``machine`` is the whole
home lost (data, local backups, WAL, secrets): only the off-site store and the kit survive."""
SCENARIOS: tuple[Scenario, ...] = ("complete", "database", "objects", "machine")
WHOLE_STACK: tuple[Scenario, ...] = ("complete", "machine")
"""The scenarios that rebuild everything: infrastructure, database (physical), buckets."""
