"""Storage alerts: ``disk_usage:<path>`` over ``disk_usage_alert_percent``,
``backup_storage_low`` (free space under the configured minimum or under the size of one more
round of backups), ``bucket_quota:<bucket>`` for the buckets with a configured quota."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from autograph.dr.monitor.state import MonitorState


class StorageChecks(MonitorState):
    """Disk usage, room for the next backups, and bucket quotas (summed from listings)."""

    def check_storage(self) -> None:
        """Disk usage of the home and backup folders, and room for the next backups."""
        seen: set[int] = set()
        backups_dir = self.settings.backups_dir
        for folder in (self.settings.home_dir, backups_dir):
            target = _existing(folder)
            device = target.stat().st_dev
            if device in seen:
                continue
            seen.add(device)
            usage = shutil.disk_usage(target)
            percent = 100.0 * (usage.total - usage.free) / usage.total if usage.total else 0.0
            key = f"disk_usage:{folder}"
            limit = self.settings.disk_usage_alert_percent
            if percent > limit:
                self.fire(key, "disk_usage", "warning",
                          f"disk holding {folder} is {percent:.1f} % full (limit {limit:g} %)",
                          path=str(folder), percent=round(percent, 2),
                          free_bytes=usage.free)
            else:
                self.alerts.resolve(key)
        self._check_backup_room(_existing(backups_dir))

    def _check_backup_room(self, folder: Path) -> None:
        newest: dict[tuple[str, str], int] = {}
        for kind in self.catalogs:
            for entry in self.listing(kind):  # newest first
                newest.setdefault((entry.kind, entry.source), entry.size_bytes)
        next_round = sum(newest.values())
        needed = max(self.settings.backup_storage_min_free_bytes, next_round)
        free = shutil.disk_usage(folder).free
        if free < needed:
            self.fire("backup_storage_low", "backup_storage_low", "warning",
                      f"backup storage is running low: {free} bytes free in "
                      f"{self.settings.backups_dir}, need {needed} (minimum "
                      f"{self.settings.backup_storage_min_free_bytes}, next round of backups "
                      f"about {next_round})", free_bytes=free, needed_bytes=needed)
        else:
            self.alerts.resolve("backup_storage_low")

    def check_quotas(self) -> None:
        """Every ``quota_check_seconds``: each bucket with a quota, summed and compared."""
        quotas = self.settings.bucket_quota_bytes
        now = self.clock()
        if not quotas or self.s3_client is None:
            return
        if self._quotas_checked is not None and (now - self._quotas_checked).total_seconds() \
                < self.settings.quota_check_seconds:
            return
        self._quotas_checked = now
        client = self.s3_client()
        for bucket, quota in sorted(quotas.items()):
            used, objects = bucket_usage(client, bucket)
            key = f"bucket_quota:{bucket}"
            if used > quota:
                self.fire(key, "bucket_quota", "warning",
                          f"bucket {bucket} holds {used} bytes in {objects} objects, over its "
                          f"quota of {quota} bytes", bucket=bucket, used_bytes=used,
                          quota_bytes=quota)
            else:
                self.alerts.resolve(key)


def bucket_usage(client: Any, bucket: str) -> tuple[int, int]:
    """Total size and object count of ``bucket`` (paginated listing)."""
    total = count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            total += int(item.get("Size", 0))
            count += 1
    return total, count


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (a fresh install has no backup folder yet)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder
