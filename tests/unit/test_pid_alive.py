"""``pid_alive``: a running process is alive; a zombie (exited, not reaped) and a reaped one
are not (the wait for a restored cluster's promotion relies on it)."""

from __future__ import annotations

import os
import subprocess
import time

from autograph.commands import pid_alive


def test_running_zombie_and_reaped_processes() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # killed, not reaped yet: a zombie
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)
