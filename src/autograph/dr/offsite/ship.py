"""Copying committed backups off-site, and the backlog of those not there yet.

The local manifest is the commit point; the off-site copy follows it.
``Catalog.ship_offsite`` (called by ``Catalog.publish``) sends the
artifact (encrypted on the way, its plaintext sha256 checked against the manifest before the
upload is completed) and then the manifest with ``extra.offsite`` recorded: an off-site manifest
always names a complete artifact. There is no queue file: the *backlog* is what the tiers say,
the local manifests without an off-site twin, so it survives crashes and restarts and is
shipped, oldest first, by :func:`ship_backlog` (called by the off-site shipper every
``AUTOGRAPH_OFFSITE_SYNC_INTERVAL_SECONDS`` and by ``autograph backup offsite sync``).

Snapshots go the same way (``snapshots.store.ship_snapshots``): the blobs an index needs that
are not off-site yet, then the index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autograph.dr.models import MANIFEST_SUFFIX, Manifest, ShipReport
from autograph.errors import AutographError, DependencyDown

if TYPE_CHECKING:
    from autograph.dr.catalog import Catalog

__all__ = ["ShipReport", "backlog", "ship_backlog"]


def backlog(catalog: Catalog) -> list[Manifest]:
    """Local backups with no off-site manifest, oldest first.

    Raises DependencyDown when the off-site store cannot be listed.
    """
    if catalog.offsite is None:
        return []
    there = {o.key for o in catalog.offsite.list() if o.key.endswith(MANIFEST_SUFFIX)}
    waiting: list[Manifest] = []
    for item in catalog.local.list():
        if not item.key.endswith(MANIFEST_SUFFIX) or item.key in there:
            continue
        try:
            with catalog.local.open(item.key) as stream:
                waiting.append(Manifest.model_validate_json(stream.read()))
        except (AutographError, ValueError):
            continue  # unreadable local manifests are the catalog's problems, not shippable
    return sorted(waiting, key=lambda m: (m.created_at, m.name))


def ship_backlog(catalog: Catalog) -> ShipReport:
    """Ship every backup of the backlog, oldest first; stop at the first unreachable store."""
    report = ShipReport(area=catalog.kind)
    try:
        waiting = backlog(catalog)
    except DependencyDown as exc:
        report.unreachable = exc.message
        return report
    for index, manifest in enumerate(waiting):
        error = catalog.ship_offsite(manifest)
        if error is None:
            report.shipped.append(manifest.name)
            continue
        report.failed[manifest.name] = error.message
        if isinstance(error, DependencyDown):
            report.unreachable = error.message
            report.backlog = [m.name for m in waiting[index:]]
            report.oldest_backlog_at = waiting[index].finished_at
            return report
    left = [m for m in waiting if m.name in report.failed]
    report.backlog = [m.name for m in left]
    report.oldest_backlog_at = left[0].finished_at if left else None
    return report


