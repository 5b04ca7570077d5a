"""What the bucket-backup manager returns and records: bucket usage, restore results, the
manifest of a new archive, and the bucket-name rule."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, JsonValue

from autograph.dr.buckets.backup import Built, Upload
from autograph.dr.models import CopyState, Kind, Manifest, RestoreResult, StepRecord, Verification
from autograph.errors import InvalidInput

KIND: Kind = "bucket"
FORMAT = "tar.gz"
VERIFY_METHOD = "full read: gzip CRC, tar structure, sha256 of every object and of the archive"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+")
# Names S3 reserves (AWS's naming rules): refused by the server, so refused here first.
_RESERVED = re.compile(r"^(xn--|sthree-|amzn-s3-demo-)|(-s3alias|--ol-s3|\.mrap|--x-s3|"
                       r"--table-s3)$|\.-|-\.")


class BucketUsage(BaseModel):
    """One bucket of the application S3 server."""

    name: str
    object_count: int
    size_bytes: int
    application: bool
    last_backup: str | None = None


class BucketList(BaseModel):
    """``GET /api/admin/minio/buckets``."""

    buckets: list[BucketUsage]


class BucketRestoreResult(RestoreResult):
    """A bucket restore: SPEC §4's ``target_bucket``, ``restored``, ``skipped``, ``failed``."""

    target_bucket: str
    overwrite: bool
    restored: int
    skipped: int
    failed: int
    failed_keys: dict[str, str]
    bytes_restored: int


def validate_bucket(name: str, what: str = "bucket name") -> str:
    """Return ``name`` if it is a valid S3 bucket name (3-63 of a-z 0-9 . -, no ``..``, not
    an IP address). Raises InvalidInput (400)."""
    if (not isinstance(name, str) or not _BUCKET.fullmatch(name) or ".." in name
            or _IP.fullmatch(name) or _RESERVED.search(name)):
        shown = repr(name)[:70] if isinstance(name, str) else type(name).__name__
        raise InvalidInput(f"invalid {what} {shown}: use 3-63 characters from a-z 0-9 . -, "
                           "starting and ending with a letter or digit, no S3-reserved "
                           "prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3)")
    return name


def bucket_manifest(name: str, bucket: str, built: Built, upload: Upload | None, *,
                    started: datetime, finished: datetime, tags: list[str],
                    steps: list[StepRecord]) -> Manifest:
    """The sidecar manifest of a freshly built (and, if ``built.verify``, verified) archive;
    ``upload`` (None: no S3 tier) says whether the S3 copy made it."""
    verification = Verification()
    if built.verify is not None:
        verification = Verification(status="passed", at=finished, method=VERIFY_METHOD, checks={
            "objects": f"{built.verify.objects} sha256 ok", "archive": "read back in full"})
    s3_copy: CopyState = "disabled"
    if upload is not None:
        s3_copy = "missing" if upload.error else "uploaded"
    deleted: list[JsonValue] = list(built.fetch.missing[:1000])
    return Manifest(
        name=name, kind=KIND, source=bucket, format=FORMAT, artifact=f"{name}.tar.gz",
        created_at=started, started_at=started, finished_at=finished,
        size_bytes=built.archive.archive_size, sha256=built.archive.archive_sha256,
        object_count=built.archive.objects, tags=tags, verification=verification,
        s3_copy=s3_copy, s3_error=upload.error if upload is not None else None,
        extra={"bytes": built.archive.bytes_in, "listed": built.listed,
               "deleted_during_backup": deleted,
               "deleted_during_backup_count": len(built.fetch.missing),
               "steps": [s.model_dump(mode="json", exclude={"data", "resumed"})
                         for s in steps + built.steps]},
    )
