"""Reading bucket archives (:mod:`.archive`): the manifest alone, every object streamed with its
sha256 checked, or the whole archive verified. Raises IntegrityError at the first problem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from autograph.dr.buckets import members
from autograph.dr.buckets.archive import (
    CHUNK,
    MANIFEST_MEMBER,
    SUMS_MEMBER,
    ObjectRecord,
    VerifyResult,
)
from autograph.errors import IntegrityError, NotFound


def _read_manifest(tar: members.TarReader) -> list[ObjectRecord]:
    first = tar.next_member()
    if first is None or first[0] != MANIFEST_MEMBER:
        raise IntegrityError(f"not a bucket archive: the first member is not {MANIFEST_MEMBER}")
    body = tar.read_exact(first[1])
    try:
        records = [ObjectRecord.model_validate_json(line) for line in body.split(b"\n") if line]
    except ValidationError as exc:
        raise IntegrityError(f"{MANIFEST_MEMBER} is invalid: {exc}") from None
    keys = [r.key for r in records]
    if keys != sorted(set(keys)) or len({r.member for r in records}) != len(records):
        raise IntegrityError(f"{MANIFEST_MEMBER} is invalid: keys or members out of order")
    return records


def _iterate(tar: members.TarReader) -> Iterator[tuple[ObjectRecord, members.MemberStream]]:
    records = _read_manifest(tar)
    sums = tar.next_member()
    expected = "".join(f"{r.sha256}  {r.member}\n" for r in records).encode()
    if sums is None or sums[0] != SUMS_MEMBER or tar.read_exact(sums[1]) != expected:
        raise IntegrityError(f"{SUMS_MEMBER} is missing or does not match {MANIFEST_MEMBER}")
    for index, record in enumerate(records):
        member = tar.next_member()
        if member is None:
            raise IntegrityError(f"the archive ends after {index} of {len(records)} objects")
        if member != (record.member, record.size):
            raise IntegrityError(
                f"member {index + 1} is {member[0]!r} ({member[1]} bytes); the manifest says "
                f"{record.member!r} ({record.size} bytes)"
            )
        stream = members.MemberStream(
            tar, record.size, record.sha256, f"object {record.key!r} ({record.member})"
        )
        yield record, stream
        stream.skip()
    extra = tar.next_member()
    if extra is not None:
        raise IntegrityError(f"the archive holds a member missing from the manifest: {extra[0]!r}")
    tar.finish()


def iter_archive(source: BinaryIO) -> Iterator[tuple[ObjectRecord, members.MemberStream]]:
    """Yield each object's record and a stream of its bytes, in archive (key) order.

    A stream read to its end checks its sha256; one left unread is skipped unchecked when the
    next object is asked for. Raises IntegrityError for a malformed, truncated or corrupt archive.
    """
    return _iterate(members.TarReader(source))


def read_manifest(source: BinaryIO) -> list[ObjectRecord]:
    """Read only the first member: the archive's object records (no digest is checked).

    Raises IntegrityError if it is not a bucket archive or its manifest is malformed.
    """
    return _read_manifest(members.TarReader(source))


def verify_archive(
    source: str | os.PathLike[str] | BinaryIO, *, expected_sha256: str | None = None
) -> VerifyResult:
    """Read the whole archive, checking every object's size and sha256 against the manifest,
    the object count, the gzip CRC and, if given, the archive's own sha256.

    Raises IntegrityError at the first problem, NotFound if the path does not exist.
    """
    if isinstance(source, str | os.PathLike):
        try:
            with Path(source).open("rb") as handle:
                return verify_archive(handle, expected_sha256=expected_sha256)
        except FileNotFoundError:
            raise NotFound(f"archive {os.fspath(source)} does not exist") from None
    tar = members.TarReader(source)
    count = total = 0
    for record, stream in _iterate(tar):
        while stream.read(CHUNK):
            pass
        count += 1
        total += record.size
    archive_sha256 = tar.digest.hexdigest()
    if expected_sha256 is not None and archive_sha256 != expected_sha256:
        raise IntegrityError(
            f"the archive's sha256 is {archive_sha256}, the catalog says {expected_sha256}"
        )
    return VerifyResult(
        objects=count, total_bytes=total, archive_size=tar.size, archive_sha256=archive_sha256
    )
