"""What a recovery did, as recorded: each step, the backups used and where they came from, the
issues, the notifications sent, and what to do if it stopped; written as ``report.json`` and
``report.md``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autograph.clock import isoformat
from autograph.dr.alerts.models import Notification
from autograph.dr.models import StepRecord


class RecoveryReport(BaseModel):
    """What a recovery did: each step, the backups used, and what to do if it stopped."""

    scenario: str
    params: dict[str, Any]
    status: str
    started_at: datetime
    finished_at: datetime
    steps: list[StepRecord]
    failed_step: str | None = None
    next_action: str = ""
    issues: list[str] = Field(default_factory=list)
    sources: dict[str, str] = Field(default_factory=dict,
                                    description="each restored artifact and the tier it came from")
    report_dir: str | None = None
    notifications: list[Notification] = Field(
        default_factory=list, description="alert notices sent while the recovery ran, per "
        "channel, oldest first (from the gateway's notifications log)")

    def restore_intervals(self) -> list[tuple[datetime, datetime]]:
        """When each restore command ran: the database's and each bucket's ``(start, end)``
        (the bucket restores run beside each other and beside the database's)."""
        steps = {s.name: s.data for s in self.steps if s.status == "passed"}
        found = [steps.get("restore_database") or {}]
        found += ((steps.get("restore_buckets") or {}).get("buckets") or {}).values()
        return [(_moment(d["started_at"]), _moment(d["finished_at"])) for d in found
                if d.get("started_at") and d.get("finished_at")]

    def restore_phase_seconds(self) -> float:
        """The wall time the restore commands took together: the length of the union of
        their intervals (overlapping restores counted once)."""
        total, reach = 0.0, None
        for start, end in sorted(self.restore_intervals()):
            begin = max(start, reach) if reach is not None else start
            if end > begin:
                total += (end - begin).total_seconds()
            reach = end if reach is None else max(reach, end)
        return round(total, 3)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write_recovery_report(report: RecoveryReport, dr_dir: Path) -> Path:
    """``HOME/dr/recoveries/<timestamp>-<scenario>/report.json`` and ``report.md``."""
    folder = dr_dir / "recoveries" / f"{report.started_at:%Y%m%dT%H%M%SZ}-{report.scenario}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(report.model_dump_json(indent=2))
    lines = [f"# Recovery ({report.scenario}): {report.status}", "",
             f"Started {isoformat(report.started_at)}, finished {isoformat(report.finished_at)}.",
             "", "| step | started | duration | status | detail |", "|---|---|---|---|---|"]
    for step in report.steps:
        mark = " (resumed)" if step.resumed else ""
        lines.append(f"| {step.name}{mark} | {isoformat(step.started_at)} | "
                     f"{step.duration_seconds:.2f} s | {step.status} | "
                     f"{step.detail.replace('|', '/')} |")
    if report.next_action:
        lines += ["", f"**Next:** {report.next_action}"]
    if report.sources:
        lines += ["", "## Restored from", ""] + [f"- {what}: {where}"
                                                for what, where in report.sources.items()]
    if report.issues:
        lines += ["", "## Issues", ""] + [f"- {issue}" for issue in report.issues]
    lines += ["", "## Notifications sent", "", *notification_lines(report.notifications)]
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    return folder


def notification_lines(sent: list[Notification]) -> list[str]:
    """The notification timeline as Markdown table lines (a sentence when none was sent)."""
    if not sent:
        return ["None recorded while the recovery ran (the gateway that sends them may "
                "have been down)."]
    lines = ["| time | channel | alert | notice | level | delivered |", "|---|---|---|---|---|---|"]
    for n in sent:
        lines.append(f"| {isoformat(n.at)} | {n.channel} | {n.key.replace('|', '/')} | "
                     f"{n.status} | {n.level or '—'} | {'yes' if n.delivered else 'NO'} |")
    return lines
