"""Test support: a PostgreSQL cluster and a Redis server run *outside* any AutoGraph stack, as a
managed or HA service would be (SPEC §11): initdb'd here on a free port with a superuser and a
replication user of their own, and a plain ``redis-server`` with its own password."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from autograph.config import load_settings
from stackutil import free_port_block, make_home, remove_home

PG_BIN = load_settings().pg_bin


@dataclass(frozen=True)
class ExternalPostgres:
    """Where the external cluster is and how to log in."""

    port: int
    superuser: str
    password: str
    replication_user: str
    replication_password: str
    data_dir: Path


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextmanager
def external_postgres() -> Iterator[ExternalPostgres]:
    """A PostgreSQL 15 cluster with superuser ``ext_admin`` and replication user ``ext_repl``
    (SCRAM over TCP, loopback only), stopped and removed afterwards."""
    home = make_home("autograph-extpg-")
    data, port = home / "data", free_port_block()
    password, repl_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pwfile = home / "pw"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    _own(pwfile)
    _own(home)
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "ext_admin",
                                 "--pwfile", str(pwfile), "--auth-local=trust",
                                 "--auth-host=scram-sha-256", "-E", "UTF8"]),
                   check=True, capture_output=True, timeout=120)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                   f"unix_socket_directories = '{home}'\nwal_level = replica\n"
                   "max_wal_senders = 10\nmax_replication_slots = 10\nfsync = off\n")
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w"]
    subprocess.run(_as_postgres([*pg_ctl, "start"]), check=True, capture_output=True,
                   timeout=120)
    try:
        subprocess.run(_as_postgres([str(PG_BIN / "psql"), "-h", str(home), "-p", str(port),
                                     "-U", "ext_admin", "-d", "postgres", "-v",
                                     "ON_ERROR_STOP=1", "-c",
                                     f"CREATE ROLE ext_repl LOGIN REPLICATION "
                                     f"PASSWORD '{repl_password}'"]),
                       check=True, capture_output=True, timeout=60)
        yield ExternalPostgres(port, "ext_admin", password, "ext_repl", repl_password, data)
    finally:
        subprocess.run(_as_postgres([*pg_ctl, "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        remove_home(home)


@contextmanager
def external_redis() -> Iterator[str]:
    """A ``redis-server`` with a password on a free port; yields its ``redis://`` URL."""
    home = make_home("autograph-extredis-")
    port, password = free_port_block(), secrets.token_urlsafe(16)
    conf = home / "redis.conf"
    conf.write_text(f"bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave \"\"\n"
                    f"appendonly no\ndir {home}\n")
    os.chmod(conf, 0o600)
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        remove_home(home)
