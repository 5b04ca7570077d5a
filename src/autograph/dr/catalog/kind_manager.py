"""What every backup kind's manager shares over its catalog: the kind's lock (one operation of
a kind at a time, :mod:`autograph.dr.ops.locks`), delete and sync. The database and bucket
managers add create, verify and restore."""

from __future__ import annotations

from contextlib import AbstractContextManager

from autograph.config import Settings
from autograph.dr.catalog.writing import Catalog, SyncReport
from autograph.dr.models import Kind, ProgressFn, no_progress, validate_name
from autograph.dr.ops import locks


class KindManager:
    """Operations on the backups of one kind; subclasses set ``settings`` and ``catalog``."""

    kind: Kind
    settings: Settings
    catalog: Catalog

    def acquire(self, operation: str, target: str = "") -> locks.OperationLock:
        """Take the kind's lock now (Conflict if busy), to hand to a later call."""
        return locks.acquire(self.settings.backups_dir, self.kind, operation, target)

    def _locked(self, operation: str, target: str,
                held: locks.OperationLock | None) -> AbstractContextManager[locks.OperationLock]:
        return locks.held_or_taken(held, lambda: self.acquire(operation, target))

    def delete(self, name: str, lock: locks.OperationLock | None = None) -> list[str]:
        """Delete ``name`` from every tier; return the tiers it was in.

        Raises InvalidInput, NotFound, Conflict (busy), DependencyDown (a tier unreachable).
        """
        validate_name(name)
        with self._locked("delete", name, lock):
            return self.catalog.delete(name)

    def sync(self, progress: ProgressFn = no_progress,
             lock: locks.OperationLock | None = None) -> SyncReport:
        """Upload local backups missing from S3 and clean up interrupted ones."""
        with self._locked("sync", "", lock):
            progress("syncing to S3", None)
            return self.catalog.sync()
