"""Stand-in servers for the alert channels: an aiosmtpd SMTP server that keeps what it receives
and a local HTTP server in place of Slack's incoming webhook (can answer 500, or hang)."""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        self.messages.append(email.message_from_bytes(raw))
        return "250 Message accepted"

    def alerts(self) -> list[str]:
        """The ``X-AutoGraph-Alert`` header of each message: ``key status``."""
        return [str(m["X-AutoGraph-Alert"]) for m in self.messages]


@contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server on localhost: ``(port, mailbox)``."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@dataclass
class Webhook:
    """What the Slack stand-in received; set ``status`` or ``hang`` to misbehave."""

    port: int
    texts: list[str] = field(default_factory=list)
    status: int = 200
    hang: threading.Event | None = None
    answered: int = 0
    received: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/secret-token-xyz"

    def alerts(self) -> list[str]:
        """``key status`` of each post (from the first line of the text)."""
        found = []
        for text in self.texts:
            first = text.splitlines()[0]
            status = "resolved" if "RESOLVED" in first else "firing"
            found.append(f"{first.rsplit(': ', 1)[-1]} {status}")
        return found


@contextmanager
def webhook_server() -> Iterator[Webhook]:
    """A local HTTP server recording the JSON posts it gets."""
    state = Webhook(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.texts.append(str(body["text"]))
            state.received.set()
            if state.hang is not None:
                state.hang.wait()
            state.answered += 1
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        if state.hang is not None:
            state.hang.set()
        server.shutdown()
        server.server_close()


@contextmanager
def health_server() -> Iterator[dict[str, int]]:
    """An HTTP server answering ``GET /health`` with ``state["status"]`` (200 or 503)."""
    state = {"status": 503, "port": free_port()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = state["status"] == 200
            body = json.dumps({"status": "healthy" if ok else "unhealthy"}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state["port"]), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
