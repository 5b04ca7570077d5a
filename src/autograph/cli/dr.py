"""``autograph dr``: ``recover`` (the plan's recovery runbooks) and ``drill`` (the automated DR
test, also ``python test_disaster_recovery.py --simulate``). ``dr status`` comes from
``cli/dr_status.py`` when present.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autograph.cli import dr_kit, dr_prove, dr_status
from autograph.cli.output import console, emit_json
from autograph.config import Settings, load_settings
from autograph.errors import AutographError, InvalidInput, OperationFailed

if TYPE_CHECKING:
    from autograph.dr.drill.models import DrillReport

# The recovery and drill machinery is imported by the command that runs it, so that the other
# commands (and ``--help``) start without it.

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]

dr_app = typer.Typer(help="Disaster recovery: recover from a scenario, drill it, its status.",
                     no_args_is_help=True)


def _echo(message: str, _fraction: float | None = None) -> None:
    console.print(message, highlight=False, markup=False)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--to {value!r} is not an ISO 8601 time "
                           "(e.g. 2026-01-05T09:00:00Z)") from None
    if moment.tzinfo is None:
        raise InvalidInput("--to needs a time zone (e.g. 2026-01-05T09:00:00Z)")
    return moment


@dr_app.command()
def recover(
    scenario: Annotated[str, typer.Option(help="complete | database | objects | machine")],
    kit: Annotated[Path | None, typer.Option(
        "--kit", help="the recovery kit (scenario machine: rebuild from the off-site store)")]
    = None,
    backup: Annotated[list[str] | None, typer.Option(
        "--backup", help="a database or bucket backup to use (repeatable); default: the "
                         "newest verified")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="recover the database and the buckets to this ISO 8601 time (one "
                     "point for both)")] = None,
    clean_orphans: Annotated[bool, typer.Option(
        "--clean-orphans", help="delete objects whose rows were lost (written after the "
                                "recovery point); default: report and keep them")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
    = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="forget an interrupted recovery and start from the first step")]
    = False,
    json_output: JsonOpt = False,
) -> None:
    """Recover the stack from a disaster scenario, step by step, in priority order.

    Assess, restore infrastructure, database and buckets, start the services, verify. Every
    step is timed and bounded; re-running after an interruption continues from the first
    unfinished step. The report goes to HOME/dr/recoveries/.
    """
    from autograph.dr.recovery.options import RecoveryOptions
    from autograph.dr.recovery.run import Recovery
    from autograph.stack.lifecycle import Stack

    settings = load_settings()
    options = RecoveryOptions(scenario, tuple(backup or ()), _parse_time(to),  # type: ignore[arg-type]
                              clean_orphans=clean_orphans)
    if (scenario == "machine") != (kit is not None):
        raise InvalidInput("--scenario machine needs --kit FILE (and --kit goes only with it)")
    if kit is not None:
        settings = _install_kit(kit, settings, yes)
    recovery = Recovery(Stack(settings), options)
    pending = recovery.operation().pending()
    if pending is not None and not fresh:
        where = f" (stopped during {pending.current})" if pending.current else ""
        _echo(f"resuming an interrupted recovery{where}: "
              f"{len(pending.done)} steps already done")
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("recovery stops services and replaces data: pass --yes")
        typer.confirm(f"Recover ({scenario}): services may be stopped and data replaced from "
                      "backups. Continue?", abort=True)
    report = recovery.run(progress=_echo, fresh=fresh)
    if json_output:
        emit_json(report)
    _echo(f"recovery {report.status}; report in {report.report_dir}")
    for what, where in report.sources.items():
        _echo(f"restored {what} from {where}")
    for issue in report.issues:
        _echo(f"issue: {issue}")
    if report.status != "passed":
        raise OperationFailed(report.next_action)


def _install_kit(path: Path, settings: Settings, yes: bool) -> Settings:
    """Open the kit, check it against the off-site store and the home, write its secrets."""
    from autograph.cli.dr_kit import passphrase
    from autograph.dr.kit.document import is_sealed, read_kit
    from autograph.dr.recovery.machine import prepare_machine

    kit = read_kit(path, passphrase(path, new=False) if is_sealed(path) else None)
    if not yes and not sys.stdin.isatty():
        raise InvalidInput("recovery writes the kit's secrets and replaces data: pass --yes")
    recovered, prepared = prepare_machine(kit, settings)
    _echo(f"kit of deployment {prepared.deployment_id}: off-site store {prepared.endpoint} "
          f"answers; {len(prepared.secrets_written)} secrets written to "
          f"{recovered.secrets_dir}")
    return recovered


@dr_app.command()
def drill(
    scenario: Annotated[str, typer.Option(
        help="complete | database | objects | machine | all")]
    = "complete",
    live: Annotated[bool, typer.Option(
        "--live", help="drill the configured stack itself instead of a sandbox")] = False,
    confirm_live: Annotated[bool, typer.Option(
        "--i-understand-this-destroys-data", help="required with --live")] = False,
    simulate: Annotated[bool, typer.Option(
        "--simulate", help="simulate the failure (the plan's spelling; always on)")] = True,
    users: Annotated[int, typer.Option(help="dataset: users")] = 3,
    diagrams: Annotated[int, typer.Option(help="dataset: diagrams per user")] = 4,
    versions: Annotated[int, typer.Option(help="dataset: versions per diagram")] = 3,
    uploads: Annotated[int, typer.Option(help="dataset: uploads")] = 6,
    exports: Annotated[int, typer.Option(help="dataset: export files")] = 6,
    window: Annotated[float, typer.Option(
        help="seconds the writer keeps committing after the last backup")] = 3.0,
    rounds: Annotated[int, typer.Option(help="backup rounds before the failure")] = 1,
    corrupt_latest: Annotated[bool, typer.Option(
        "--corrupt-latest", help="flip a byte in every copy of the newest backups "
                                 "(tests the fallback; needs --rounds 2 or more)")] = False,
    database_fault: Annotated[str, typer.Option(help="corrupt | drop")] = "corrupt",
    rto_target: Annotated[float | None, typer.Option(help="seconds (default: settings)")]
    = None,
    rpo_target: Annotated[float | None, typer.Option(help="seconds (default: settings)")]
    = None,
    keep_sandbox: Annotated[bool, typer.Option("--keep-sandbox")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run the DR drill (by default in a sandbox): RTO, RPO, integrity, success criteria.

    Loads data, keeps a writer committing, backs up, injects the scenario's failure, runs the
    recovery and measures it against the plan's targets and success criteria. Exits 0 only
    when every drill passed. Reports go to HOME/dr/reports/, history to HOME/dr/drills.jsonl.
    """
    from autograph.dr.drill.models import Targets
    from autograph.dr.drill.options import DrillOptions
    from autograph.dr.drill.run import run_drills
    from autograph.dr.drill.workload import DatasetSpec
    from autograph.dr.models import SCENARIOS

    del simulate
    _check_drill_flags(live, confirm_live, database_fault)
    settings = load_settings()
    chosen = SCENARIOS if scenario == "all" else (scenario,)
    targets = Targets(rto_seconds=rto_target or settings.rto_target_seconds,
                      rpo_seconds=rpo_target or settings.rpo_target_seconds)
    options = DrillOptions(
        scenarios=chosen, live=live,  # type: ignore[arg-type]
        dataset=DatasetSpec(users=users, diagrams_per_user=diagrams,
                            versions_per_diagram=versions, uploads=uploads, exports=exports),
        window_seconds=window, backup_rounds=rounds, corrupt_latest=corrupt_latest,
        database_fault=database_fault, targets=targets,  # type: ignore[arg-type]
        keep_sandbox=keep_sandbox)
    reports = run_drills(settings, options, progress=_echo)
    _show_drills(reports, json_output)
    if not reports or not all(report.passed for report, _ in reports):
        raise typer.Exit(1)


def _check_drill_flags(live: bool, confirm_live: bool, database_fault: str) -> None:
    """Refuse ``--live`` without its confirmation, and an unknown ``--database-fault``."""
    if live and not confirm_live:
        raise InvalidInput("--live destroys the stack's data: add "
                           "--i-understand-this-destroys-data to confirm")
    if database_fault not in ("corrupt", "drop"):
        raise InvalidInput("--database-fault must be corrupt or drop")


def _show_drills(reports: list[tuple[DrillReport, Path]], json_output: bool) -> None:
    """One summary line per drill (JSON lines first with ``--json``), then its criteria."""
    from autograph.dr.drill.report import summary_line

    if json_output:
        emit_json([summary_line(report) | {"report": str(folder)}
                   for report, folder in reports])
    for report, folder in reports:
        rpo = report.rpo
        _echo(f"{report.scenario}: {'PASSED' if report.passed else 'FAILED'}; RTO "
              f"{_s(report.rto_seconds)}; RPO database {_s(rpo.database_seconds)} "
              f"({rpo.database_writes_lost} writes lost), objects {_s(rpo.objects_seconds)} "
              f"({rpo.objects_lost} lost); report {folder / 'report.html'}")
        for line in report.success_criteria:
            _echo(f"  [{line.status}] {line.item}: {line.evidence}")


def _s(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} s"


def register(app: typer.Typer) -> None:
    """Attach ``autograph dr`` (with ``dr status``)."""
    app.add_typer(dr_app, name="dr")


dr_status.register(dr_app)  # ``dr status``, after the commands above (the help's order)
dr_prove.register(dr_app)
dr_app.add_typer(dr_kit.kit_app, name="kit")


def drill_main(argv: list[str] | None = None) -> int:
    """``test_disaster_recovery.py``: the drill command alone; returns the exit code."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(drill)
    try:
        code = app(args=argv, standalone_mode=False)  # click returns an Exit's code here
    except AutographError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as done:
        return int(done.exit_code)
    except SystemExit as done:
        return int(done.code or 0)
    return int(code or 0) if isinstance(code, int) else 0
