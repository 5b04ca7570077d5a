"""PostgreSQL backups: ``DatabaseBackupManager`` (dump, verify, restore with swap, rollback)."""

from autograph.dr.postgres.manager import DatabaseBackupManager

__all__ = ["DatabaseBackupManager"]
