"""Alert channels against real servers: an aiosmtpd SMTP server and a local HTTP server that
stands in for Slack's incoming webhook (and can answer 500 or hang)."""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from autograph.clock import utc_now
from autograph.dr.alerts.console import ConsoleChannel
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.email import EmailChannel
from autograph.dr.alerts.file import FileChannel
from autograph.dr.alerts.models import Alert, Channel
from autograph.dr.alerts.slack import SlackChannel
from autograph.errors import OperationFailed

SMTP_USER = "alerts@autograph.test"
SMTP_PASSWORD = "smtp-Pa55word-never-logged"
WEBHOOK_TOKEN = "xoxb-webhook-token-never-logged"
KEY = "backup_failed:database"
SERVER_LOGGERS = ("mail.log", "aiosmtpd", "asyncio")  # the stand-in servers' own logs

# The test SMTP server takes a login without TLS, which aiosmtpd (rightly) warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- SMTP ----------------------------------------------------------------------------------------


class MailRecorder:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.received = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        self.messages.append(email.message_from_bytes(raw))
        self.received.set()
        return "250 Message accepted"


def check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (SMTP_USER, SMTP_PASSWORD)
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@dataclass
class SmtpServer:
    port: int
    recorder: MailRecorder


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on localhost that requires a login (no TLS)."""
    recorder = MailRecorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=check_login,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SmtpServer(port, recorder)
    finally:
        controller.stop()


class HangingTcpServer:
    """Accepts connections and never says a word (an SMTP server that hangs) until released."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        self.released = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.released:
                conn.close()
                return
            self.connections.append(conn)
            self.accepted.set()

    def release(self) -> None:
        """Close every connection and stop listening (shutdown wakes the blocked accept)."""
        self.released = True
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self.connections:
            conn.close()


# --- Slack stand-in ------------------------------------------------------------------------------


@dataclass
class WebhookServer:
    """Records POSTs; answers 500 to the next ``failures`` posts, or holds them while ``hang``."""

    port: int
    posts: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    hang: threading.Event | None = None
    answered: list[int] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0001/B0002/{WEBHOOK_TOKEN}"

    def texts(self) -> list[str]:
        return [post["body"]["text"] for post in self.posts]


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    port = free_port()
    state = WebhookServer(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.posts.append({"path": self.path, "body": body})
            state.received.set()
            if state.hang is not None:
                state.hang.wait()
            status = 200
            if state.failures > 0:
                state.failures -= 1
                status = 500
            state.answered.append(status)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"server error")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        if state.hang is not None:
            state.hang.set()
        server.shutdown()
        server.server_close()


# --- helpers -------------------------------------------------------------------------------------


def email_channel(port: int, timeout: float = 10.0) -> EmailChannel:
    return EmailChannel(
        host="127.0.0.1",
        port=port,
        from_addr="autograph@autograph.test",
        to_addrs=("ops@autograph.test",),
        username=SMTP_USER,
        password=SecretStr(SMTP_PASSWORD),
        timeout_seconds=timeout,
    )


def channels_for(
    tmp_path: Path, smtp_port: int, webhook: WebhookServer, **timeouts: float
) -> list[Channel]:
    return [
        ConsoleChannel(),
        FileChannel(tmp_path / "log" / "alerts.log"),
        email_channel(smtp_port, timeouts.get("email", 10.0)),
        SlackChannel(SecretStr(webhook.url), timeout_seconds=timeouts.get("slack", 10.0)),
    ]


def file_lines(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "log" / "alerts.log").read_text()
    return [json.loads(line) for line in text.splitlines()]


def our_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(SERVER_LOGGERS)
    )


def fire_backup_failed(alerts: AlertDispatcher) -> bool:
    return alerts.fire(KEY, "backup_failed", "critical", "pg_dump exited 1", {"kind": "database"})


OTHERS = ["console", "file", "slack"]


# --- tests ---------------------------------------------------------------------------------------


def test_each_channel_gets_one_alert_and_one_resolved_notice(
    tmp_path: Path,
    smtp_server: SmtpServer,
    webhook: WebhookServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alerts = AlertDispatcher(channels_for(tmp_path, smtp_server.port, webhook), utc_now)
    assert fire_backup_failed(alerts)
    assert not fire_backup_failed(alerts)
    assert alerts.resolve(KEY)
    assert not alerts.resolve(KEY)
    assert alerts.flush(timeout=60)
    alerts.close()

    subjects = [m["Subject"] for m in smtp_server.recorder.messages]
    assert subjects == [
        f"[AutoGraph] FIRING critical: {KEY}",
        f"[AutoGraph] RESOLVED critical: {KEY}",
    ]
    assert smtp_server.recorder.messages[0]["To"] == "ops@autograph.test"
    assert "pg_dump exited 1" in smtp_server.recorder.messages[0].get_payload()

    assert [p["path"] for p in webhook.posts] == [f"/services/T0001/B0002/{WEBHOOK_TOKEN}"] * 2
    assert [text.splitlines()[0] for text in webhook.texts()] == [
        f":rotating_light: [AutoGraph] FIRING critical: {KEY}",
        f":white_check_mark: [AutoGraph] RESOLVED critical: {KEY}",
    ]

    assert [(x["key"], x["status"]) for x in file_lines(tmp_path)] == [
        (KEY, "firing"),
        (KEY, "resolved"),
    ]
    console = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["key"], x["status"], x["details"]) for x in console] == [
        (KEY, "firing", {"kind": "database"}),
        (KEY, "resolved", {"kind": "database"}),
    ]
    assert alerts.failed_deliveries() == {"console": 0, "file": 0, "email": 0, "slack": 0}
    logged = our_log_text(caplog)
    assert SMTP_PASSWORD not in logged and WEBHOOK_TOKEN not in logged


def test_a_hanging_smtp_server_delays_neither_fire_nor_the_other_channels(
    tmp_path: Path, webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hanging = HangingTcpServer()
    channels = channels_for(tmp_path, hanging.port, webhook, email=120.0)
    alerts = AlertDispatcher(channels, utc_now, retry_attempts=1, backoff_seconds=0.01)
    try:
        assert fire_backup_failed(alerts)
        assert alerts.flush(timeout=60, channels=OTHERS)
        assert hanging.accepted.wait(timeout=60)
        # The e-mail is still stuck waiting for a greeting while everyone else has it.
        assert not alerts.flush(timeout=0, channels=["email"])
        assert [x["status"] for x in file_lines(tmp_path)] == ["firing"]
        assert len(webhook.posts) == 1
    finally:
        hanging.release()
    assert alerts.flush(timeout=60)
    alerts.close()
    assert alerts.failed_deliveries()["email"] == 1
    logged = our_log_text(caplog)
    gave_up = "not delivered to channel email after 2 tries: OperationFailed: SMTP 127.0.0.1"
    assert f"{gave_up}:{hanging.port}" in logged
    assert SMTP_PASSWORD not in logged and WEBHOOK_TOKEN not in logged


def test_an_smtp_server_that_is_down_is_retried_then_logged(
    tmp_path: Path, webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    down_port = free_port()
    channels = channels_for(tmp_path, down_port, webhook)
    alerts = AlertDispatcher(channels, utc_now, retry_attempts=2, backoff_seconds=0.01)
    assert fire_backup_failed(alerts)
    assert alerts.flush(timeout=60)
    alerts.close()
    assert alerts.failed_deliveries() == {"console": 0, "file": 0, "email": 1, "slack": 0}
    assert len(webhook.posts) == 1
    logged = our_log_text(caplog)
    assert logged.count("channel email failed (try") == 2
    assert "ConnectionRefusedError" in logged
    assert SMTP_PASSWORD not in logged


def test_a_webhook_answering_500_is_retried_with_backoff_until_it_succeeds(
    tmp_path: Path,
    smtp_server: SmtpServer,
    webhook: WebhookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook.failures = 2
    channels = channels_for(tmp_path, smtp_server.port, webhook)
    alerts = AlertDispatcher(channels, utc_now, retry_attempts=3, backoff_seconds=0.01)
    assert fire_backup_failed(alerts)
    assert alerts.flush(timeout=60)
    alerts.close()
    assert webhook.answered == [500, 500, 200]
    assert alerts.failed_deliveries()["slack"] == 0
    assert len(smtp_server.recorder.messages) == 1
    logged = our_log_text(caplog)
    assert "retrying in 0.01 s" in logged and "retrying in 0.02 s" in logged
    assert "answered HTTP 500" in logged
    assert WEBHOOK_TOKEN not in logged


def test_a_webhook_that_keeps_failing_does_not_hold_up_the_other_channels(
    tmp_path: Path,
    smtp_server: SmtpServer,
    webhook: WebhookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook.failures = 1_000
    channels = channels_for(tmp_path, smtp_server.port, webhook)
    alerts = AlertDispatcher(channels, utc_now, retry_attempts=5, backoff_seconds=3600)
    assert fire_backup_failed(alerts)
    assert alerts.flush(timeout=60, channels=["console", "file", "email"])
    assert webhook.received.wait(timeout=60)
    # Slack failed once and now waits out its backoff while the others have delivered.
    assert not alerts.flush(timeout=0, channels=["slack"])
    assert len(smtp_server.recorder.messages) == 1
    alerts.close(timeout=0)
    assert alerts.flush(timeout=60)
    assert alerts.failed_deliveries()["slack"] == 1
    logged = our_log_text(caplog)
    assert "answered HTTP 500 (dispatcher closing)" in logged
    assert WEBHOOK_TOKEN not in logged


def test_a_hanging_webhook_does_not_hold_up_the_other_channels(
    tmp_path: Path, smtp_server: SmtpServer, webhook: WebhookServer
) -> None:
    webhook.hang = threading.Event()
    channels = channels_for(tmp_path, smtp_server.port, webhook, slack=120.0)
    alerts = AlertDispatcher(channels, utc_now, backoff_seconds=0.01)
    assert fire_backup_failed(alerts)
    assert alerts.flush(timeout=60, channels=["console", "file", "email"])
    assert webhook.received.wait(timeout=60)
    assert not alerts.flush(timeout=0, channels=["slack"])
    assert webhook.answered == []
    assert len(smtp_server.recorder.messages) == 1
    webhook.hang.set()
    assert alerts.flush(timeout=60)
    alerts.close()
    assert webhook.answered == [200]
    assert alerts.failed_deliveries()["slack"] == 0


def test_secrets_stay_out_of_reprs_and_errors(webhook: WebhookServer) -> None:
    mail = email_channel(free_port())
    slack = SlackChannel(SecretStr(webhook.url.replace(str(webhook.port), str(free_port()))))
    assert SMTP_PASSWORD not in repr(mail) and SMTP_PASSWORD not in str(vars(mail))
    assert WEBHOOK_TOKEN not in repr(slack) and WEBHOOK_TOKEN not in str(vars(slack))
    alert = Alert(
        key=KEY, rule="backup_failed", severity="critical", message="m", started_at=utc_now()
    )
    for channel in (mail, slack):
        with pytest.raises(OperationFailed) as failure:
            channel.send(alert)
        shown = f"{failure.value} {failure.value!r}"
        assert SMTP_PASSWORD not in shown and WEBHOOK_TOKEN not in shown
        assert failure.value.__cause__ is None


def test_a_wrong_smtp_password_is_reported_without_the_password(
    smtp_server: SmtpServer,
) -> None:
    wrong = EmailChannel(
        host="127.0.0.1",
        port=smtp_server.port,
        from_addr="autograph@autograph.test",
        to_addrs=("ops@autograph.test",),
        username=SMTP_USER,
        password=SecretStr("wrong-" + SMTP_PASSWORD),
    )
    alert = Alert(
        key=KEY, rule="backup_failed", severity="critical", message="m", started_at=utc_now()
    )
    with pytest.raises(OperationFailed, match="SMTPAuthenticationError") as failure:
        wrong.send(alert)
    assert SMTP_PASSWORD not in str(failure.value)
    assert smtp_server.recorder.messages == []
