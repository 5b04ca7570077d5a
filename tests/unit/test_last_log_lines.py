"""Why a component exited stays in the start error: the last lines of its log."""

from __future__ import annotations

from pathlib import Path

from autograph.stack.lifecycle import last_log_lines


def test_the_last_lines_of_a_long_log_come_back_on_one_line(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    noise = "".join(f"request {i} served\n" for i in range(5000))  # far more than 8 KiB
    log.write_text(noise + "Traceback (most recent call last):\n\n"
                   "  File \"app.py\", line 3\nOSError: [Errno 98] address already in use\n")
    assert last_log_lines(log) == ("Traceback (most recent call last): | File \"app.py\", "
                                   "line 3 | OSError: [Errno 98] address already in use")


def test_a_missing_or_empty_log_is_said_plainly(tmp_path: Path) -> None:
    assert last_log_lines(tmp_path / "never-written.log") == "(no log)"
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert last_log_lines(empty) == "(no output)"
