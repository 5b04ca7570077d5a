"""The monitor's wiring from settings: the alert channels and dispatcher, what it watches (the
stack's components as probes) and which sources it expects backups of (the dead-man's
switch), and the journal of backup events it reads."""

from __future__ import annotations

from collections.abc import Callable

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.alerts import escalation, notifications
from autograph.dr.alerts.console import ConsoleChannel
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.email import EmailChannel
from autograph.dr.alerts.file import FileChannel
from autograph.dr.alerts.models import Channel
from autograph.dr.alerts.slack import SlackChannel
from autograph.dr.monitor.monitor import Expected, Role, Watched
from autograph.dr.monitor.status import ALERT_STATE_NAME
from autograph.dr.ops import hooks, journal
from autograph.dr.schedules import intervals, sources
from autograph.secrets import Credentials


def record_events(settings: Settings) -> Callable[[], None]:
    """Journal this process's backup events for the gateway's monitor (for processes that
    run backups without a Runtime, e.g. the CLI); returns the unsubscribe function."""
    return hooks.on_event(journal.recorder(journal.journal_path(settings.dr_dir)))


def build_channels(settings: Settings) -> list[Channel]:
    """Console and file always; e-mail when an SMTP host and recipients are set; Slack when a
    webhook URL is set."""
    channels: list[Channel] = [ConsoleChannel(), FileChannel(settings.alerts_log_path)]
    if settings.smtp_host and settings.alert_email_to:
        channels.append(EmailChannel(
            host=settings.smtp_host, port=settings.smtp_port,
            from_addr=settings.alert_email_from, to_addrs=tuple(settings.alert_email_to),
            username=settings.smtp_user, password=settings.smtp_password,
            starttls=settings.smtp_starttls))
    if settings.slack_webhook_url is not None:
        channels.append(SlackChannel(settings.slack_webhook_url))
    return channels


def build_dispatcher(settings: Settings, *, clock: Clock = utc_now,
                     channels: list[Channel] | None = None) -> AlertDispatcher:
    """The dispatcher with the configured channels and its state in ``HOME/dr``."""
    return AlertDispatcher(
        build_channels(settings) if channels is None else channels, clock,
        retry_attempts=settings.alert_retry_attempts,
        backoff_seconds=settings.alert_backoff_seconds,
        state_path=settings.dr_dir / ALERT_STATE_NAME,
        escalation=escalation.path_from(settings.alert_escalation),
        notifications_path=notifications.log_path(settings.dr_dir))


def build_watched(settings: Settings, creds: Credentials) -> list[Watched]:
    """The stack's components as probes: PostgreSQL, S3 (and a separate backup S3), the rest
    as services (Redis, WAL streaming, the application services)."""
    from autograph.s3.boto import backup_client
    from autograph.stack.components import build_components
    from autograph.stack.health import s3_probe

    roles: dict[str, Role] = {"postgres": "database", "s3": "s3"}
    watched = [Watched(c.name, roles.get(c.name, "service"), c.health)
               for c in build_components(settings, creds)]
    if settings.backup_s3_endpoint:
        watched.append(Watched("backup-s3", "backup_s3", s3_probe(
            lambda: backup_client(settings, creds, retries=1, connect_timeout=1,
                                  read_timeout=5))))
    return watched


def expected_sources(settings: Settings) -> list[Expected]:
    """Every scheduled source, for the dead-man's switch."""
    every = intervals(settings)
    return [Expected(kind, source, every[kind])
            for kind, names in sources(settings).items() for source in names]
