"""What the running stack exposes: S3 refuses anonymous requests, Redis wants its password,
and every port any of its processes listens on is bound to 127.0.0.1 (the session's app
stack: PostgreSQL, Redis, S3 and every service)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

from autograph.stack.lifecycle import Stack

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def _redis_say(stack: Stack, *commands: bytes) -> list[bytes]:
    """Send RESP inline commands on one connection; the first line of each answer."""
    answers = []
    with socket.create_connection(("127.0.0.1", stack.settings.redis_port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for command in commands:
            sock.sendall(command + b"\r\n")
            answers.append(reader.readline().strip())
    return answers


def test_redis_refuses_commands_without_its_password_and_a_wrong_one(app_stack: Stack) -> None:
    unauthenticated, wrong = _redis_say(app_stack, b"GET anything", b"AUTH not-the-password")
    assert unauthenticated.startswith(b"-NOAUTH"), unauthenticated
    assert wrong.startswith(b"-WRONGPASS") or wrong.startswith(b"-ERR"), wrong
    password = app_stack.creds.redis_password.encode()
    assert _redis_say(app_stack, b"AUTH " + password, b"PING") == [b"+OK", b"+PONG"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/diagrams"), ("GET", "/diagrams/any-key"),
    ("PUT", "/diagrams/any-key"), ("DELETE", "/diagrams/any-key"), ("PUT", "/a-new-bucket"),
    ("GET", "/autograph-backups"),
])
def test_s3_refuses_anonymous_requests(app_stack: Stack, method: str, path: str) -> None:
    with httpx.Client(base_url=app_stack.settings.s3_url, timeout=10, trust_env=False) as s3:
        answer = s3.request(method, path, content=b"x" if method == "PUT" else None)
    assert answer.status_code == 403, (answer.status_code, answer.text)
    assert "AccessDenied" in answer.text


def _tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _listening(inodes: set[str]) -> list[tuple[str, int]]:
    """(local address as /proc writes it, port) of each TCP socket in LISTEN among ``inodes``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append((address, int(port, 16)))
    return found


def test_every_listening_port_of_the_stack_is_bound_to_loopback(app_stack: Stack) -> None:
    supervisord = int((app_stack.settings.run_dir / "supervisord.pid").read_text())
    pids = _tree(supervisord)
    listening = _listening(_socket_inodes(pids))
    ports = {port for _, port in listening}
    expected = {app_stack.settings.pg_port, app_stack.settings.redis_port,
                app_stack.settings.s3_port, app_stack.settings.service_port("gateway")}
    assert expected <= ports, (expected - ports, listening)
    exposed = [(address, port) for address, port in listening if address != LOOPBACK_V4]
    assert exposed == [], f"listening beyond 127.0.0.1: {exposed}"
