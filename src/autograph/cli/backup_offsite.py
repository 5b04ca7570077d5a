"""``autograph backup offsite``: the off-site tier's lag, its backlog, and the WAL chain there."""

from __future__ import annotations

from typing import Annotated

import typer

from autograph.cli.output import console, emit_json
from autograph.config import Settings, load_settings
from autograph.errors import ConfigError, IntegrityError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
offsite_app = typer.Typer(
    help="The encrypted off-site copy: status, shipping the backlog, checking the WAL chain.",
    no_args_is_help=True,
)


def _settings() -> Settings:
    from autograph.dr.storage.offsite import offsite_enabled

    settings = load_settings()
    if not offsite_enabled(settings):
        raise ConfigError("no off-site tier configured: set AUTOGRAPH_OFFSITE_S3_ENDPOINT "
                          "(see the README, 'Off-site copy and encryption')")
    return settings


@offsite_app.command("status")
def status(json_output: JsonOpt = False) -> None:
    """Reachability, key id, and per kind (WAL included) the lag and backlog off-site."""
    from autograph.dr.offsite.status import offsite_status

    report = offsite_status(_settings())
    assert report is not None
    if json_output:
        emit_json(report)
        return
    key = f"encrypted with key {report.key_id}" if report.encryption else "NOT encrypted"
    state = "reachable" if report.reachable else f"UNREACHABLE ({report.error})"
    console.print(f"off-site {report.endpoint} bucket {report.bucket}: {state}, {key}; "
                  f"shipper {'running' if report.shipper_running else 'NOT running'}")
    for kind in report.kinds:
        lag = "unknown" if kind.lag_seconds is None else f"{kind.lag_seconds:.0f} s"
        console.print(f"  {kind.kind:<11} lag {lag:>9}, backlog {kind.backlog}, newest "
                      f"{kind.newest_offsite or '-'}")
    for problem in report.problems:
        console.print(f"  problem: {problem}")


@offsite_app.command("sync")
def sync(json_output: JsonOpt = False) -> None:
    """Ship now every backup and snapshot not off-site yet (oldest first)."""
    from autograph.dr.offsite.shipper import sync_backlog

    reports = sync_backlog(_settings())
    if json_output:
        emit_json(reports)
    else:
        for area, report in reports.items():
            extra = f" (unreachable: {report.unreachable})" if report.unreachable else ""
            console.print(f"{area}: shipped {len(report.shipped)}, still waiting "
                          f"{len(report.backlog)}{extra}")
    if any(r.unreachable or r.failed for r in reports.values()):
        raise typer.Exit(5)


@offsite_app.command("wal")
def wal(deep: Annotated[bool, typer.Option(help="decrypt and authenticate every segment")]
        = False, json_output: JsonOpt = False) -> None:
    """Check the off-site WAL chain of every cluster folder: gaps (and damage, with --deep)."""
    from autograph.dr.offsite.wal import WalShipper, chain_check
    from autograph.dr.storage.offsite import area_prefix, offsite_client

    settings = _settings()
    client = offsite_client(settings)
    shipper = WalShipper(settings, client)
    prefix = area_prefix(settings, "wal")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=settings.offsite_s3_bucket, Prefix=prefix, Delimiter="/")
    folders = sorted(p["Prefix"][len(prefix):].rstrip("/")
                     for page in pages for p in page.get("CommonPrefixes", []))
    reports = [chain_check(shipper.store(f), f, deep=deep) for f in folders]
    if json_output:
        emit_json(reports)
    else:
        for r in reports:
            console.print(f"{r.folder}: {r.segments} segments {r.first} .. {r.last}: "
                          + ("chain complete" if r.ok else
                             f"{len(r.gaps)} gaps, {len(r.damaged)} damaged"))
            for line in r.gaps + r.damaged:
                console.print(f"  {line}")
    if any(not r.ok for r in reports):
        raise IntegrityError("the off-site WAL chain has gaps or damaged segments")


def register(backup_app: typer.Typer) -> None:
    """Add the ``offsite`` subgroup to ``autograph backup``."""
    backup_app.add_typer(offsite_app, name="offsite")
