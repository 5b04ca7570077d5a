"""A PostgreSQL data folder built from a base backup: unpacked, owned by the server's user,
asked to replay its WAL and promote; and the whole clusters earlier recoveries kept."""

from __future__ import annotations

import os
import pwd
import shutil
from datetime import UTC, datetime
from pathlib import Path

from autograph import commands
from autograph.config import Settings

RECOVERY_CONF = "autograph-recovery.conf"


def pg_user(settings: Settings) -> str | None:
    """The operating-system user that owns the cluster's files (None: the current one)."""
    from autograph.stack.infra import postgres_os_user

    return postgres_os_user(settings)


def live_data_dir(settings: Settings) -> Path:
    """The stack's PostgreSQL data folder."""
    from autograph.stack.infra import postgres_data_dir

    return postgres_data_dir(settings)


def chown_tree(root: Path, user: str | None) -> None:
    """Give ``root`` and everything under it to ``user`` (nothing when None)."""
    if not user:
        return
    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(root):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def extract_base_backup(archive: Path, target: Path, user: str | None) -> None:
    """Unpack a base backup into a new folder owned by the server's user (mode 0700)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    commands.run(["tar", "-xf", str(archive), "-C", str(target)], what="tar -x base backup",
                 timeout=1800)
    os.chmod(target, 0o700)
    chown_tree(target, user)


def write_recovery_conf(data: Path, target_time: datetime | None, user: str | None) -> None:
    """Ask the cluster in ``data`` to replay its ``pg_wal`` (to ``target_time``, else to the
    end) and promote."""
    lines = ["restore_command = '/bin/false'", "recovery_target_timeline = 'latest'"]
    if target_time is not None:
        moment = target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        lines += [f"recovery_target_time = '{moment}'",
                  "recovery_target_action = 'promote'"]
    (data / RECOVERY_CONF).write_text("\n".join(lines) + "\n")
    (data / "recovery.signal").write_text("")
    chown_tree(data, user)


def drop_old_clusters(data_dir: Path, keep: int) -> list[str]:
    """Remove ``postgres.pre_pitr_*`` data folders beyond the newest ``keep`` (each is a
    whole cluster kept for going back); return their names."""
    kept = sorted(data_dir.glob("postgres.pre_pitr_*"), reverse=True)
    for folder in kept[keep:]:
        shutil.rmtree(folder)
    return [folder.name for folder in kept[keep:]]
