"""Actual RPO from the writer's log: which acknowledged writes a recovery lost, and how much
history (seconds) that is. Pure: the writes, what survived and the failure time are arguments.

A write is *acknowledged* when the server confirmed it (HTTP 2xx, S3 PUT answered). It
*survived* when its key is present after the recovery with the same fingerprint (when both sides
have one). The *recovery point* is the newest surviving write acknowledged before the first lost
one: every write up to it is back. The history lost is the span from the recovery point to the
last write acknowledged before the failure. Writes acknowledged after the failure do not count
toward the RPO; they are reported on their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from autograph.errors import InvalidInput

WriteKind = Literal["database", "object"]
KINDS: tuple[WriteKind, ...] = ("database", "object")
SAMPLE_SIZE = 20


@dataclass(frozen=True)
class AckedWrite:
    """One acknowledged write: what kind, its identity, when the server acknowledged it."""

    kind: WriteKind
    key: str
    at: datetime
    fingerprint: str | None = None

    def to_json(self) -> str:
        """One line of the writer's log."""
        return json.dumps({"kind": self.kind, "key": self.key, "at": self.at.isoformat(),
                           "fingerprint": self.fingerprint})


@dataclass(frozen=True)
class DataLoss:
    """What one kind of data lost in a recovery."""

    kind: WriteKind
    acknowledged: int
    lost: int
    changed: int
    seconds: float
    recovery_point: datetime | None
    last_acknowledged: datetime | None
    after_failure: int = 0
    lost_sample: list[str] = field(default_factory=list)


def parse_log(lines: Iterable[str]) -> list[AckedWrite]:
    """Parse the writer's JSON-lines log (blank lines ignored; a torn last line too).

    Raises InvalidInput naming the line for any other malformed line.
    """
    writes: list[AckedWrite] = []
    rows = [line for line in lines if line.strip()]
    for number, line in enumerate(rows, start=1):
        try:
            raw = json.loads(line)
            kind = raw["kind"]
            if kind not in KINDS:
                raise ValueError(kind)
            at = datetime.fromisoformat(raw["at"])
            if at.tzinfo is None:
                raise ValueError("naive time")
            writes.append(AckedWrite(kind, str(raw["key"]), at, raw.get("fingerprint")))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(rows):
                break  # the writer was killed while appending: not acknowledged to anyone
            raise InvalidInput(f"writer log line {number} is malformed: {exc}") from None
    return writes


def data_loss(
    kind: WriteKind,
    writes: Iterable[AckedWrite],
    survived: Mapping[str, str | None],
    failure_at: datetime | None = None,
) -> DataLoss:
    """Measure the loss of one kind of write.

    ``survived`` maps each key present after the recovery to its fingerprint (or None).
    With ``failure_at``, writes acknowledged after it are only counted in ``after_failure``.
    A key written twice counts once per write: only the last write of a key must survive
    with its fingerprint; earlier ones survive if the key does.
    """
    mine = sorted((w for w in writes if w.kind == kind), key=lambda w: w.at)
    before = [w for w in mine if failure_at is None or w.at <= failure_at]
    after = len(mine) - len(before)
    last_of_key = {w.key: i for i, w in enumerate(before)}
    lost_flags: list[bool] = []
    changed = 0
    for index, write in enumerate(before):
        if write.key not in survived:
            lost_flags.append(True)
            continue
        final = last_of_key[write.key] == index
        mismatch = (final and write.fingerprint is not None
                    and survived[write.key] is not None
                    and survived[write.key] != write.fingerprint)
        if mismatch:
            changed += 1
        lost_flags.append(mismatch)
    lost = [w for w, flag in zip(before, lost_flags, strict=True) if flag]
    last = before[-1].at if before else None
    if not lost:
        return DataLoss(kind, len(before), 0, changed, 0.0, last, last, after)
    first_lost = next(i for i, flag in enumerate(lost_flags) if flag)
    point = before[first_lost - 1].at if first_lost > 0 else before[first_lost].at
    assert last is not None
    seconds = max(0.0, (last - point).total_seconds())
    return DataLoss(kind, len(before), len(lost), changed, round(seconds, 3), point, last,
                    after, [w.key for w in lost[:SAMPLE_SIZE]])
