"""The one subprocess wrapper: argument lists only, a timeout, stderr kept for the error message.

Secrets go through ``env`` (e.g. PGPASSWORD), never through argv.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograph.errors import OperationFailed


@dataclass(frozen=True)
class Completed:
    """The outcome of a finished command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _environment(env: Mapping[str, str] | None, drop_prefix: str | None = None
                 ) -> dict[str, str]:
    merged = {name: value for name, value in os.environ.items()
              if drop_prefix is None or not name.startswith(drop_prefix)}
    if env:
        merged.update(env)
    return merged


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    check: bool = True,
    what: str | None = None,
    input_text: str | None = None,
    cwd: os.PathLike[str] | str | None = None,
    drop_inherited: str | None = None,
) -> Completed:
    """Run a command to completion and return its output.

    ``drop_inherited``: variables of this process whose names start with it are not passed on.

    Raises OperationFailed naming ``what`` (default: the program) with the tail of stderr when
    the command fails (and ``check``), times out, or cannot be started.
    """
    label = what or os.path.basename(args[0])
    try:
        proc = subprocess.run(
            list(args),
            env=_environment(env, drop_inherited),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
            cwd=cwd,
        )
    except FileNotFoundError:
        raise OperationFailed(f"{label}: program not found: {args[0]}") from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{label}: timed out after {timeout:.0f} s") from None
    result = Completed(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise OperationFailed(f"{label} failed (exit {proc.returncode}): {tail(proc.stderr)}")
    return result


def start(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start a streaming command (binary pipes); the caller reads stdout and calls ``finish``."""
    try:
        return subprocess.Popen(
            list(args), env=_environment(env), stdin=stdin, stdout=stdout,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise OperationFailed(f"program not found: {args[0]}") from None


def finish(proc: subprocess.Popen[bytes], *, what: str, timeout: float = 600.0) -> None:
    """Wait for a streaming command; raise OperationFailed with its stderr if it failed."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise OperationFailed(f"{what}: timed out after {timeout:.0f} s") from None
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise OperationFailed(f"{what} failed (exit {proc.returncode}): {tail(err)}")


def tail(text: str, lines: int = 5) -> str:
    """The last non-empty lines of a command's output, joined on one line."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def pid_alive(pid: int | None) -> bool:
    """True if a process with ``pid`` exists on this machine (and, where /proc tells, is not
    a zombie: a dead child its parent has not reaped yet)."""
    if not pid or pid < 1:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
    except OSError:
        pass
    else:
        return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
