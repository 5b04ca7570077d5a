"""The protected point of each backup tier: "every object whose row committed by W is here".

The replicator (:mod:`.outbox`) writes it into each tier's snapshot index store after a pass
that left nothing pending for that tier, as the database time at which it looked minus a
margin (a transaction whose commit time is just before that instant may not have been visible
yet). Recovery reads it from every reachable tier: a database restored to a time at or before
the newest protected point references only objects some tier holds (SPEC §7, issue 12).

The replicator also keeps a local state file (``HOME/dr/outbox-state.json``) for the monitor
and ``dr status``: when it last ran, what is pending, and why a tier failed.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from autograph.dr.buckets.snapshots.store import SnapshotStore, TierStores
from autograph.errors import AutographError, DependencyDown, IntegrityError, NotFound

WATERMARK_KEY = "outbox.watermark.json"
STATE_NAME = "outbox-state.json"


class OutboxState(BaseModel):
    """What the last replicator pass saw (written by whichever gateway ran it)."""

    at: datetime
    pending: int = 0
    oldest_pending_at: datetime | None = None
    protected: dict[str, datetime] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    shipped_total: int = 0


def write_watermark(tier: TierStores, moment: datetime) -> None:
    """Record ``moment`` as the tier's protected point (never moves it backwards).

    Raises DependencyDown / OperationFailed from the tier's store."""
    current = read_watermark(tier)
    if current is not None and current >= moment:
        return
    body = json.dumps({"protected_at": moment.astimezone(UTC).isoformat()}).encode()
    tier.index.put(WATERMARK_KEY, io.BytesIO(body))


def read_watermark(tier: TierStores) -> datetime | None:
    """The tier's protected point, or None when it has none (no replicator ran).

    Raises DependencyDown when the tier is unreachable, IntegrityError when unreadable."""
    try:
        with tier.index.open(WATERMARK_KEY) as handle:
            data = handle.read()
    except NotFound:
        return None
    try:
        moment = datetime.fromisoformat(json.loads(data)["protected_at"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{tier.name} protected point is unreadable: {exc}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def protected_points(store: SnapshotStore) -> tuple[dict[str, datetime], dict[str, str]]:
    """Each reachable tier's protected point, and the tiers that could not say, with why."""
    found: dict[str, datetime] = {}
    problems: dict[str, str] = {}
    for tier in store.tiers():
        try:
            moment = read_watermark(tier)
        except (DependencyDown, IntegrityError) as exc:
            problems[tier.name] = exc.message
            continue
        except AutographError as exc:
            problems[tier.name] = exc.message
            continue
        if moment is None:
            problems[tier.name] = "no protected point recorded (the replicator never ran)"
        else:
            found[tier.name] = moment
    return found, problems


def state_path(dr_dir: Path) -> Path:
    return dr_dir / STATE_NAME


def write_state(dr_dir: Path, state: OutboxState) -> None:
    """Replace the state file atomically."""
    path = state_path(dr_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(state.model_dump_json())
    temp.replace(path)


def read_state(dr_dir: Path) -> OutboxState | None:
    """The last pass's state, or None (no replicator ran here, or the file is unreadable)."""
    try:
        return OutboxState.model_validate_json(state_path(dr_dir).read_text())
    except (OSError, ValueError):
        return None
