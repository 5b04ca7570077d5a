"""Drill reports: the verdict rules, the three renderings, the history and the schedule."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from autograph.dr.drill.models import (
    CRITERIA,
    DrillReport,
    RpoFigures,
    ServiceRecovery,
    Targets,
    checklist,
)
from autograph.dr.drill.report import (
    drill_schedule,
    load_history,
    next_quarterly,
    render_html,
    render_markdown,
    render_timeline,
    write_report,
)
from autograph.dr.models import StepRecord

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _report(**changes: object) -> DrillReport:
    steps = [
        StepRecord(name="backup", started_at=T0, duration_seconds=2.0, status="passed"),
        StepRecord(name="inject_failure", started_at=T0 + timedelta(seconds=2),
                   duration_seconds=0.5, status="passed", detail="SIGKILL <all> & data"),
        StepRecord(name="recover.verify", started_at=T0 + timedelta(seconds=3),
                   duration_seconds=1.5, status="passed"),
    ]
    values: dict[str, object] = {
        "scenario": "complete", "started_at": T0, "finished_at": T0 + timedelta(seconds=5),
        "failure_at": T0 + timedelta(seconds=2.5), "recovered_at": T0 + timedelta(seconds=4.5),
        "rto_seconds": 2.0,
        "rpo": RpoFigures(database_seconds=3.0, database_writes_lost=4,
                          database_writes_acknowledged=40, objects_seconds=1.0,
                          objects_lost=2, objects_acknowledged=30),
        "targets": Targets(rto_seconds=3600, rpo_seconds=300),
        "steps": steps,
        "services": [ServiceRecovery(name="postgres", recovery_seconds=0.8, healthy=True)],
        "success_criteria": checklist({item: (True, "seen") for item in CRITERIA}),
        "issues": ["latest backup corrupt"],
    }
    values.update(changes)
    return DrillReport.model_validate(values)


def test_passed_needs_every_criterion_and_both_targets() -> None:
    assert _report().passed
    assert not _report(rto_seconds=4000.0).passed
    assert not _report(rto_seconds=None).passed
    assert not _report(rpo=RpoFigures(database_seconds=301.0, objects_seconds=0.0)).passed
    assert not _report(rpo=RpoFigures(database_seconds=1.0)).passed  # objects not measured


def test_an_unchecked_criterion_is_never_a_pass_and_fails_the_drill() -> None:
    results = {item: (True, "seen") for item in CRITERIA[:-1]}
    report = _report(success_criteria=checklist(results))
    last = report.success_criteria[-1]
    assert (last.item, last.status) == (CRITERIA[-1], "not_checked")
    assert not report.passed


def test_the_checklist_keeps_the_plans_order_and_rejects_unknown_items() -> None:
    lines = checklist({CRITERIA[3]: (False, "login answered 503")})
    assert [line.item for line in lines] == list(CRITERIA)
    assert lines[3].status == "fail" and lines[3].evidence == "login answered 503"
    with pytest.raises(ValueError, match="not success criteria"):
        checklist({"All services recovered within 1 hour": (True, "")})


def test_report_json_has_the_spec_shape() -> None:
    data = json.loads(_report().model_dump_json())
    for key in ("scenario", "started_at", "finished_at", "passed", "rto_seconds", "rpo",
                "targets", "steps", "services", "integrity", "success_criteria", "issues"):
        assert key in data
    assert set(data["rpo"]) >= {"database_seconds", "database_writes_lost",
                                "objects_seconds", "objects_lost"}
    assert set(data["steps"][0]) >= {"name", "started_at", "duration_seconds", "status",
                                     "detail"}
    assert set(data["success_criteria"][0]) == {"item", "status", "evidence"}
    assert data["passed"] is True


def test_markdown_shows_measures_checklist_and_issues() -> None:
    report = _report(success_criteria=checklist({CRITERIA[0]: (True, "RTO 2 s")}))
    text = render_markdown(report)
    assert "FAILED" in text.splitlines()[0]
    assert "[x] All services recovered within 1 hour (RTO) — RTO 2 s" in text
    assert "[ ] not checked Real-time collaboration working" in text
    assert "4 of 40 writes lost" in text
    assert "latest backup corrupt" in text
    assert "\\|" not in text.split("## Steps")[0]


def test_html_is_self_contained_and_escapes_details() -> None:
    page = render_html(_report())
    assert "<svg" in page
    assert "SIGKILL &lt;all&gt; &amp; data" in page
    assert not re.search(r"(src|href)=['\"]?https?:", page)
    assert "<script" not in page


def test_the_timeline_is_valid_svg_with_one_bar_per_step() -> None:
    svg = ElementTree.fromstring(render_timeline(_report()))
    rects = svg.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 3
    widths = [float(r.get("width", "0")) for r in rects]
    assert widths[0] > widths[2] > widths[1]  # proportional to 2.0, 1.5 and 0.5 s
    texts = "".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "failure" in texts and "recovered" in texts


def test_write_report_writes_three_files_and_a_history_line(tmp_path: Path) -> None:
    first = write_report(_report(), tmp_path)
    second = write_report(_report(scenario="database",
                                  started_at=T0 + timedelta(days=1),
                                  finished_at=T0 + timedelta(days=1, seconds=5)), tmp_path)
    assert first.name == "20260105T090000Z-complete"
    assert {p.name for p in first.iterdir()} == {"report.json", "report.md", "report.html"}
    assert json.loads((first / "report.json").read_text())["scenario"] == "complete"
    history = load_history(tmp_path)
    assert [h.scenario for h in history] == ["complete", "database"]
    assert history[1].report == str(second)
    assert history[0].rpo_seconds == 3.0


def test_load_history_skips_a_torn_line(tmp_path: Path) -> None:
    write_report(_report(), tmp_path)
    with open(tmp_path / "drills.jsonl", "a") as handle:
        handle.write('{"scenario": "comp')
    assert len(load_history(tmp_path)) == 1


@pytest.mark.parametrize(("tested", "expected"), [
    (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
    (datetime(2026, 3, 31, 23, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
    (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)),
    (datetime(2025, 12, 23, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    (datetime(2026, 10, 2, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_next_quarterly_is_the_next_january_april_july_or_october(
        tested: datetime, expected: datetime) -> None:
    assert next_quarterly(tested) == expected


def test_schedule_without_history_is_due_now(tmp_path: Path) -> None:
    schedule = drill_schedule(load_history(tmp_path), T0)
    assert schedule.last_tested is None
    assert schedule.next_scheduled == T0 and schedule.overdue


def test_schedule_after_a_drill(tmp_path: Path) -> None:
    write_report(_report(passed=False), tmp_path)
    history = load_history(tmp_path)
    on_time = drill_schedule(history, T0 + timedelta(days=30))
    assert on_time.last_tested == T0 + timedelta(seconds=5)
    assert on_time.next_scheduled == datetime(2026, 4, 1, tzinfo=UTC)
    assert not on_time.overdue and on_time.last_passed is True
    assert drill_schedule(history, datetime(2026, 4, 2, tzinfo=UTC)).overdue


INTEGRITY = {
    "database": {"checked": True, "ok": False, "basis": "the backup's manifest",
                 "tables": {"users": {"expected_rows": 10, "rows": 10, "checksum_match": True},
                            "diagrams": {"expected_rows": 7, "rows": 6,
                                         "checksum_match": False}},
                 "mismatched": ["diagrams"]},
    "objects": {"checked": True, "ok": True,
                "buckets": {"diagrams": {"expected": 5, "found": 5, "missing": 0, "extra": 0,
                                         "changed": 0, "sample": []}}},
    "references": {"ok": False, "new_dangling": ["canvas/<b>gone</b>"],
                   "lost_after_backup": [], "orphans": {"diagrams": 1}},
    "dataset": {"diagrams": {"mismatched": 0, "read": 20}},
}


def test_html_integrity_is_tables_not_a_json_dump() -> None:
    page = render_html(_report(integrity=INTEGRITY))
    section = page.split("<h2>Integrity</h2>")[1].split("<h2>")[0]
    assert "<pre>" not in section
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    assert ["diagrams", "7", "6", "NO"] in cells and ["users", "10", "10", "yes"] in cells
    assert ["diagrams", "5", "5", "0", "0", "0", "—"] in cells
    assert "DIFFERS" in section and "the backup&#x27;s manifest" in section
    assert "<li>canvas/&lt;b&gt;gone&lt;/b&gt;</li>" in section  # dangling refs listed, escaped
    assert ["diagrams.read", "20"] in cells and ["orphans.diagrams", "1"] in cells


def test_html_integrity_says_when_nothing_was_checked() -> None:
    page = render_html(_report(integrity={"database": {"checked": False, "why": "no dump"}}))
    assert "not checked: no dump" in page
    assert "no integrity evidence recorded" in render_html(_report(integrity={}))


def test_the_consoles_copy_of_a_report_carries_its_screenshots_inline(tmp_path: Path) -> None:
    """The console serves report.html under ``img-src data:``: the screenshots beside it go in
    as data: URIs; a missing one stays a name; only plain names beside the report are read."""
    import base64

    from autograph.dr.api.console import _inline_screenshots

    png = b"\x89PNG\r\n\x1a\n" + b"pixels"
    (tmp_path / "before-failure-diagram.png").write_bytes(png)
    (tmp_path.parent / "outside.png").write_bytes(png)
    page = ("<img src='before-failure-diagram.png' alt='a'><img src='after-recovery-diagram.png'"
            " alt='b'><img src='../outside.png' alt='c'>")
    served = _inline_screenshots(page, tmp_path)
    assert f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}' alt='a'>" in served
    assert "<img src='after-recovery-diagram.png' alt='b'>" in served
    assert "<img src='../outside.png' alt='c'>" in served
