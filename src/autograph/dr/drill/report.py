"""Drill reports: ``report.json``, ``report.md``, a self-contained ``report.html`` with a
timeline of the steps, the ``drills.jsonl`` history, and the quarterly schedule
(Last Tested / Next Scheduled). Rendering is pure; only ``write_report`` and the history
functions touch the disk.
"""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autograph.clock import isoformat
from autograph.dr.drill.models import DrillReport
from autograph.dr.drill.report_integrity import render_integrity

QUARTER_MONTHS = (1, 4, 7, 10)  # the plan: January, April, July, October
_STATUS_MARK = {"pass": "[x]", "fail": "[ ] FAIL", "not_checked": "[ ] not checked"}
_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e"}


def _seconds(value: float | None) -> str:
    if value is None:
        return "not measured"
    if value >= 120:
        return f"{value:.1f} s ({value / 60:.1f} min)"
    return f"{value:.2f} s"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# JSON and Markdown --------------------------------------------------------------------------

def render_json(report: DrillReport) -> str:
    """``report.json``: the SPEC §8 shape (and more), indented."""
    return json.dumps(report.model_dump(mode="json"), indent=2) + "\n"


def render_markdown(report: DrillReport) -> str:
    """``report.md``: summary, steps, services, integrity, checklist, issues."""
    r, rpo = report, report.rpo
    lines = [
        f"# DR drill: {r.scenario} ({r.mode}) — {'PASSED' if r.passed else 'FAILED'}",
        "",
        f"Started {isoformat(r.started_at)}, finished {isoformat(r.finished_at)}.",
        "",
        "| measure | value | target | verdict |",
        "|---|---|---|---|",
        f"| RTO (failure → every check green) | {_seconds(r.rto_seconds)} | "
        f"{_seconds(r.targets.rto_seconds)} | {_verdict(r.rto_met)} |",
        f"| RPO database | {_seconds(rpo.database_seconds)}, "
        f"{_count(rpo.database_writes_lost)} of {_count(rpo.database_writes_acknowledged)} "
        f"writes lost | {_seconds(r.targets.database_rpo_seconds or r.targets.rpo_seconds)} "
        f"| {_verdict(r.rpo_met)} |",
        f"| RPO objects | {_seconds(rpo.objects_seconds)}, {_count(rpo.objects_lost)} of "
        f"{_count(rpo.objects_acknowledged)} objects lost | "
        f"{_seconds(r.targets.objects_rpo_seconds or r.targets.rpo_seconds)} "
        f"| {_verdict(r.rpo_met)} |",
        f"| database restore | {_seconds(r.database_restore_seconds)} | | |",
        f"| object restore | {_seconds(r.objects_restore_seconds)} | | |",
        "",
        "## Steps",
        "",
        "| step | started | duration | status | detail |",
        "|---|---|---|---|---|",
    ]
    for step in r.steps:
        lines.append(f"| {step.name} | {isoformat(step.started_at)} | "
                     f"{step.duration_seconds:.2f} s | {step.status} | {_cell(step.detail)} |")
    lines += ["", "## Service recovery", "", "| component | recovery time | healthy |",
              "|---|---|---|"]
    for service in r.services:
        lines.append(f"| {service.name} | {_seconds(service.recovery_seconds)} | "
                     f"{'yes' if service.healthy else 'NO'} |")
    lines += ["", "## Success criteria", ""]
    for line in r.success_criteria:
        lines.append(f"- {_STATUS_MARK[line.status]} {line.item} — {line.evidence}")
    lines += ["", "## Integrity", "", "```json",
              json.dumps(r.integrity, indent=2, default=str), "```", ""]
    if r.backups:
        lines += ["## Backups used", "", "```json", json.dumps(r.backups, indent=2), "```", ""]
    if r.workload:
        lines += ["## Workload", "", "```json", json.dumps(r.workload, indent=2), "```", ""]
    lines += ["## Screenshots", ""]
    lines += [f"![{_cell(shot.alt)}]({shot.file})" for shot in r.screenshots] or ["none taken"]
    lines += [f"- note: {_cell(note)}" for note in r.notes]
    lines += ["", "## Issues encountered", ""]
    lines += [f"- {_cell(issue)}" for issue in r.issues] or ["- none"]
    lines += ["", "## Action items", ""]
    lines += [f"- {_cell(item)}" for item in r.action_items] or ["- none"]
    return "\n".join(lines) + "\n"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# HTML ---------------------------------------------------------------------------------------

def render_timeline(report: DrillReport, width: int = 900) -> str:
    """An inline SVG Gantt chart: one bar per step on a shared time axis, with the failure and
    the recovery marked."""
    steps = report.steps
    if not steps:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>"
    origin = min(s.started_at for s in steps)
    end = max(s.started_at.timestamp() + s.duration_seconds for s in steps)
    span = max(end - origin.timestamp(), 0.001)
    label_w, row_h, top = 230, 22, 24
    scale = (width - label_w - 80) / span
    height = top + row_h * len(steps) + 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "font-family='sans-serif' font-size='12' role='img' aria-label='timeline'>"]
    for index, step in enumerate(steps):
        y = top + index * row_h
        x = label_w + (step.started_at - origin).total_seconds() * scale
        w = max(step.duration_seconds * scale, 1.5)
        colour = _COLOURS.get(step.status, "#555")
        title = html.escape(f"{step.name}: {step.status}, {step.duration_seconds:.2f} s — "
                            f"{step.detail}", quote=True)
        parts.append(f"<text x='4' y='{y + 15}'>{html.escape(step.name)}</text>")
        parts.append(f"<rect x='{x:.1f}' y='{y + 4}' width='{w:.1f}' height='{row_h - 8}' "
                     f"fill='{colour}'><title>{title}</title></rect>")
        parts.append(f"<text x='{x + w + 4:.1f}' y='{y + 15}' fill='#333'>"
                     f"{step.duration_seconds:.2f} s</text>")
    axis_y = top + row_h * len(steps) + 8
    parts.append(f"<line x1='{label_w}' y1='{axis_y}' x2='{label_w + span * scale:.1f}' "
                 f"y2='{axis_y}' stroke='#333'/>")
    parts.append(f"<text x='{label_w}' y='{axis_y + 16}'>0 s</text>")
    parts.append(f"<text x='{label_w + span * scale - 40:.1f}' y='{axis_y + 16}'>"
                 f"{span:.1f} s</text>")
    for label, moment, colour in (("failure", report.failure_at, "#c62828"),
                                  ("recovered", report.recovered_at, "#2e7d32")):
        if moment is None:
            continue
        mx = label_w + (moment - origin).total_seconds() * scale
        parts.append(f"<line x1='{mx:.1f}' y1='{top - 6}' x2='{mx:.1f}' y2='{axis_y}' "
                     f"stroke='{colour}' stroke-dasharray='4 3'/>")
        parts.append(f"<text x='{mx + 3:.1f}' y='{top - 10}' fill='{colour}'>{label}</text>")
    parts.append("</svg>")
    return "".join(parts)


_CSS = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
        "vertical-align:top}caption{text-align:left;font-weight:bold}.pass,.passed{color:#2e7d32}.fail,.failed{color:#c62828}"
        ".not_checked,.skipped{color:#777}figure{display:inline-block;margin:0 1em 1em 0}"
        "figure img{border:1px solid #ccc;max-width:100%;height:auto}"
        "pre{background:#f5f5f5;padding:1em;overflow:auto}")


def render_html(report: DrillReport) -> str:
    """``report.html``: one file, no external resources, the timeline inline as SVG."""
    e = html.escape
    r = report
    verdict = "PASSED" if r.passed else "FAILED"
    rows = "".join(
        f"<tr><td>{e(s.name)}</td><td>{e(isoformat(s.started_at))}</td>"
        f"<td>{s.duration_seconds:.2f} s</td><td class='{s.status}'>{s.status}</td>"
        f"<td>{e(s.detail)}</td></tr>" for s in r.steps)
    services = "".join(
        f"<tr><td>{e(s.name)}</td><td>{e(_seconds(s.recovery_seconds))}</td>"
        f"<td>{'yes' if s.healthy else 'NO'}</td></tr>" for s in r.services)
    criteria = "".join(
        f"<tr><td>{e(c.item)}</td><td class='{c.status}'>{c.status.replace('_', ' ')}</td>"
        f"<td>{e(c.evidence)}</td></tr>" for c in r.success_criteria)
    issues = "".join(f"<li>{e(i)}</li>" for i in r.issues) or "<li>none</li>"
    actions = "".join(f"<li>{e(i)}</li>" for i in r.action_items) or "<li>none</li>"
    summary = "".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in (
            ("RTO", f"{_seconds(r.rto_seconds)} (target {_seconds(r.targets.rto_seconds)}, "
                    f"{_verdict(r.rto_met)})"),
            ("RPO database", f"{_seconds(r.rpo.database_seconds)}, "
                             f"{_count(r.rpo.database_writes_lost)} writes lost"),
            ("RPO objects", f"{_seconds(r.rpo.objects_seconds)}, "
                            f"{_count(r.rpo.objects_lost)} objects lost"),
            ("RPO target", f"{_seconds(r.targets.rpo_seconds)} ({_verdict(r.rpo_met)})"),
            ("database restore", _seconds(r.database_restore_seconds)),
            ("object restore", _seconds(r.objects_restore_seconds)),
            ("started", isoformat(r.started_at)), ("finished", isoformat(r.finished_at))))
    integrity = render_integrity(r.integrity)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>DR drill {e(r.scenario)} {e(isoformat(r.started_at))}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>DR drill: {e(r.scenario)} ({e(r.mode)}) — "
        f"<span class='{'pass' if r.passed else 'fail'}'>{verdict}</span></h1>"
        f"<table>{summary}</table><h2>Timeline</h2>{render_timeline(r)}"
        "<h2>Steps</h2><table><tr><th>step</th><th>started</th><th>duration</th>"
        f"<th>status</th><th>detail</th></tr>{rows}</table>"
        "<h2>Service recovery</h2><table><tr><th>component</th><th>recovery time</th>"
        f"<th>healthy</th></tr>{services}</table>"
        "<h2>Success criteria</h2><table><tr><th>item</th><th>status</th><th>evidence</th>"
        f"</tr>{criteria}</table><h2>Integrity</h2>{integrity}"
        f"<h2>Screenshots</h2>{render_screenshots(r)}"
        f"<h2>Issues encountered</h2><ul>{issues}</ul><h2>Action items</h2><ul>{actions}</ul>"
        "</body></html>\n"
    )


def render_screenshots(report: DrillReport) -> str:
    """The screenshots as figures (relative to the report folder), then the notes."""
    e = html.escape
    figures = "".join(
        f"<figure><img src='{e(shot.file, quote=True)}' alt='{e(shot.alt, quote=True)}' "
        f"width='640'><figcaption>{e(shot.alt)}</figcaption></figure>"
        for shot in report.screenshots) or "<p>none taken</p>"
    notes = "".join(f"<li>{e(note)}</li>" for note in report.notes)
    return figures + (f"<ul class='notes'>{notes}</ul>" if notes else "")


# Files and history --------------------------------------------------------------------------

def report_folder(dr_dir: Path, started_at: datetime, scenario: str) -> Path:
    """``dr_dir/reports/YYYYMMDDTHHMMSSZ-<scenario>``: sortable, and distinct for
    ``--scenario all``."""
    return dr_dir / "reports" / f"{started_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{scenario}"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(report: DrillReport, dr_dir: Path) -> Path:
    """Write the three renderings into ``dr_dir/reports/<timestamp>-<scenario>/`` and append
    the drill to ``dr_dir/drills.jsonl``. Returns the report folder."""
    folder = report_folder(dr_dir, report.started_at, report.scenario)
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "report.json", render_json(report))
    _write(folder / "report.md", render_markdown(report))
    _write(folder / "report.html", render_html(report))
    append_history(dr_dir, report, folder)
    return folder


class HistoryEntry(BaseModel):
    """One line of ``drills.jsonl``."""

    scenario: str
    mode: str
    started_at: datetime
    finished_at: datetime
    passed: bool
    rto_seconds: float | None
    rpo_seconds: float | None
    report: str


def append_history(dr_dir: Path, report: DrillReport, folder: Path) -> HistoryEntry:
    """Append one drill to ``drills.jsonl`` (one JSON object per line)."""
    figures = [f for f in (report.rpo.database_seconds, report.rpo.objects_seconds)
               if f is not None]
    entry = HistoryEntry(
        scenario=report.scenario, mode=report.mode, started_at=report.started_at,
        finished_at=report.finished_at, passed=report.passed, rto_seconds=report.rto_seconds,
        rpo_seconds=max(figures) if len(figures) == 2 else None, report=str(folder))
    dr_dir.mkdir(parents=True, exist_ok=True)
    with open(dr_dir / "drills.jsonl", "a", encoding="utf-8") as handle:
        handle.write(entry.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


def load_history(dr_dir: Path) -> list[HistoryEntry]:
    """Every drill recorded in ``drills.jsonl``, oldest first (unreadable lines skipped)."""
    path = dr_dir / "drills.jsonl"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(HistoryEntry.model_validate_json(line))
        except ValueError:
            continue
    return sorted(entries, key=lambda e: e.started_at)


class DrillSchedule(BaseModel):
    """The plan's header fields: Last Tested and Next Scheduled Test (quarterly)."""

    last_tested: datetime | None
    last_scenario: str | None = None
    last_mode: str | None = None
    last_passed: bool | None = None
    last_report: str | None = None
    next_scheduled: datetime
    overdue: bool
    drills_recorded: int = 0


def next_quarterly(after: datetime) -> datetime:
    """The first day (00:00 UTC) of the first quarter month (Jan, Apr, Jul, Oct) after the
    month of ``after``: one drill per quarter."""
    moment = after.astimezone(UTC)
    for year in (moment.year, moment.year + 1):
        for month in QUARTER_MONTHS:
            if (year, month) > (moment.year, moment.month):
                return datetime(year, month, 1, tzinfo=UTC)
    raise AssertionError("unreachable")


def drill_schedule(history: list[HistoryEntry], now: datetime) -> DrillSchedule:
    """Last Tested (the newest drill) and Next Scheduled (quarterly after it; due now if
    there never was one). ``overdue`` when the next date has passed."""
    if not history:
        return DrillSchedule(last_tested=None, next_scheduled=now, overdue=True)
    last = max(history, key=lambda e: e.finished_at)
    upcoming = next_quarterly(last.finished_at)
    return DrillSchedule(
        last_tested=last.finished_at, last_scenario=last.scenario, last_mode=last.mode,
        last_passed=last.passed, last_report=last.report, next_scheduled=upcoming,
        overdue=now >= upcoming, drills_recorded=len(history))


def summary_line(report: DrillReport) -> dict[str, Any]:
    """A short dict for CLI output: scenario, verdict, RTO, RPO, failed criteria."""
    return {
        "scenario": report.scenario, "passed": report.passed, "rto_seconds": report.rto_seconds,
        "rpo": report.rpo.model_dump(),
        "failed": [c.item for c in report.success_criteria if c.status == "fail"],
        "not_checked": [c.item for c in report.success_criteria if c.status == "not_checked"],
    }
