"""``autograph dr status``: the same picture as ``GET /api/admin/dr/status``, with no gateway.

Reads the backup catalogs, the schedule state, the monitor's persisted alerts and the drill
history directly. Exits 0 when the status is ``ok``, 1 for ``warning``, 2 for ``critical`` (so a
cron job or a check script can use it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from autograph.cli.output import emit_json, human_age, human_size
from autograph.clock import utc_now
from autograph.config import load_settings
from autograph.secrets import load_credentials

if TYPE_CHECKING:
    from autograph.dr.monitor.status import DrStatus

out = Console()
EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}
COLOURS = {"ok": "green", "warning": "yellow", "critical": "red"}


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else human_age(seconds) + " ago"


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    if moment <= now:
        return "due now"
    return f"{_stamp(moment)} (in {_ago((moment - now).total_seconds())[:-4]})"


def _schedule(on_time: bool, interval: float) -> str:
    every = human_age(interval)
    return f"every {every}: [green]on time[/]" if on_time else f"every {every}: [red]overdue[/]"


def _render_rpo(status: DrStatus) -> None:
    """The RPO once, against the continuous protection (each kind keeps its own schedule)."""
    rpo = status.rpo
    if rpo is None:
        return
    verdict = "[green]met[/]" if rpo.met else "[red]missed[/]"
    worst = "no protection for a part" if rpo.exposure_seconds is None else \
        f"worst {human_age(rpo.exposure_seconds)}"
    parts = "; ".join(
        f"{p.name}: {p.protected_by}"
        + ("" if p.age_seconds is None else f" {human_age(p.age_seconds)}")
        + ("" if p.met else " [red](over)[/]") for p in rpo.parts)
    out.print(f"RPO (continuous protection): {verdict}, {worst} against "
              f"{human_age(rpo.target_seconds)} ({parts})")


def render(status: DrStatus) -> None:
    """Print the status: one block per backup source, then alerts and drills."""
    now = status.generated_at
    level = status.status
    out.print(f"DR status: [{COLOURS[level]}]{level}[/]   RPO target "
              f"{status.rpo_target_seconds}s, RTO target {status.rto_target_seconds}s, "
              f"scheduler {'on' if status.scheduler_enabled else 'off'}")
    _render_rpo(status)
    for infra in status.infrastructure:
        health = "[green]healthy[/]" if infra.healthy else f"[red]down[/] {infra.detail[:60]}"
        out.print(f"{infra.name} ({'external' if infra.external else 'ours'}, "
                  f"{infra.address}): {health}")
    for item in status.sources:
        out.print(f"{item.kind}/{item.source}  [{COLOURS[item.status]}]{item.status}[/]")
        last = item.last_success
        if last is None:
            out.print("  last success: never")
        else:
            out.print(f"  last success: {last.name}, {_ago(item.age_seconds)}, "
                      f"{human_size(last.size_bytes)}, {', '.join(last.locations)} "
                      f"({_schedule(item.within_schedule, item.interval_seconds)})")
        verified = item.last_verified.name if item.last_verified else "none"
        if item.verification_failed:
            verified += f"; failed: {', '.join(item.verification_failed)}"
        out.print(f"  next run: {_when(item.next_scheduled_run, now)}; last verified: "
                  f"{verified}")
        for problem in item.problems:
            out.print(f"  - {problem}")
    point = status.consistent_point
    if point is not None:
        out.print(f"consistent point (database + objects): {_stamp(point.at)}, "
                  f"{_ago(point.age_seconds)}; {point.pending_objects} objects waiting"
                  + "".join(f"; [yellow]{t} failing[/]: {why}" for t, why in point.failing.items()))
    for snap in status.snapshots:
        newest = (f"{snap.latest}, {_ago(snap.age_seconds)}" if snap.latest else "none")
        out.print(f"snapshots/{snap.bucket}  [{COLOURS[snap.status]}]{snap.status}[/]  "
                  f"newest: {newest}; {snap.snapshots} kept, every "
                  f"{snap.interval_seconds:g}s")
        for problem in snap.problems:
            out.print(f"  - {problem}")
    for where, why in status.unreachable.items():
        out.print(f"  [yellow]{where} unreachable[/]: {why}")
    if status.active_alerts:
        out.print(f"active alerts ({len(status.active_alerts)}):")
        for alert in status.active_alerts:
            out.print(f"  [{'red' if alert.severity == 'critical' else 'yellow'}]"
                      f"{alert.severity}[/] {alert.key}: {alert.message} "
                      f"(since {_stamp(alert.started_at)})")
    else:
        out.print("active alerts: none")
    drills = status.drills
    tested = (f"{_stamp(drills.last_tested)} ({drills.last_scenario}, "
              f"{'passed' if drills.last_passed else 'failed'})" if drills.last_tested
              else "never")
    out.print(f"last DR drill: {tested}; next scheduled: {_stamp(drills.next_scheduled)}"
              + (" [yellow](overdue)[/]" if drills.overdue else ""))
    _render_proofs(status)


def _render_proofs(status: DrStatus) -> None:
    for item in status.proven:
        when = (f"{_stamp(item.last_proven_at)} ({item.method}, {item.duration_seconds:.1f} s;"
                f" {item.evidence})" if item.last_proven_at else "never")
        last = "" if item.last_status in (None, "passed") else \
            f" [red]last attempt {item.last_status}: {item.last_detail}[/]"
        out.print(f"proven restorable/{item.kind}: {when}{last}")
    drill = status.last_drill
    if drill is not None:
        figures = [f"{name} {'not measured' if value is None else f'{value:.1f} s'}"
                   for name, value in (("RTO", drill.rto_seconds), ("RPO", drill.rpo_seconds))]
        out.print(f"last drill ({drill.scenario}, {'passed' if drill.passed else 'failed'}): "
                  f"{', '.join(figures)}; report {drill.report}")


def status_command(
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")]
    = False,
) -> None:
    """Backups per kind against the RPO target, next scheduled runs, alerts, drills."""
    # Imported here, not at the top: the runtime brings FastAPI, which every other command
    # (and ``--help``) would pay for at start.
    from autograph.dr.daemon import collect_status

    settings = load_settings()
    status = collect_status(settings, load_credentials(settings), clock=utc_now)
    if json_output:
        emit_json(status)
    else:
        render(status)
    raise typer.Exit(EXIT_CODES[status.status])


def register(dr_app: typer.Typer) -> None:
    """Add ``status`` to the ``autograph dr`` group."""
    dr_app.command("status")(status_command)
