"""Bucket backups: streaming tar.gz archives with a manifest (write, verify, restore) and, in
:mod:`.snapshots`, incremental content-addressed snapshots. ``MinIOBucketBackupManager`` is the
public face."""
