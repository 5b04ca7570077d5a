"""A failed drill keeps its sandbox's logs (the tail of each) beside its report."""

from __future__ import annotations

from pathlib import Path

from autograph.dr.drill.sandbox import LOG_TAIL_BYTES, keep_sandbox_logs


def test_the_tail_of_each_sandbox_log_is_copied_next_to_the_report(tmp_path: Path) -> None:
    logs, report = tmp_path / "sandbox" / "log", tmp_path / "report"
    logs.mkdir(parents=True)
    (logs / "export.log").write_bytes(b"old line\n" * 10 + b"Traceback: the reason\n")
    big = b"x" * LOG_TAIL_BYTES + b"the last words\n"
    (logs / "postgres.log").write_bytes(b"dropped" + big)
    (logs / "notes.txt").write_text("not a log")

    kept = keep_sandbox_logs(logs, report)

    assert kept == report / "sandbox-logs"
    assert sorted(p.name for p in kept.iterdir()) == ["export.log", "postgres.log"]
    assert (kept / "export.log").read_bytes().endswith(b"Traceback: the reason\n")
    tail = (kept / "postgres.log").read_bytes()
    assert len(tail) == LOG_TAIL_BYTES and tail.endswith(b"the last words\n")
    assert b"dropped" not in tail
