"""The gateway naming the service behind a failed proxied request: 503 when the service is
down (the session's real gateway, one service stopped), 502 when it breaks the exchange and
504 when it does not answer in time (a gateway in this process whose diagram service is a
socket that misbehaves on purpose)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from autograph.services.gateway.app import create_app
from autograph.stack.lifecycle import Stack


def test_a_stopped_service_is_503_naming_it_and_served_again_once_started(
        app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> None:
    app_stack.stop("auth")
    try:
        answer = gateway.get("/api/users/me", headers=user)
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"detail": "the auth service is unavailable"}
        assert gateway.get("/health").status_code == 200  # the gateway itself still serves
    finally:
        app_stack.start("auth")
    assert gateway.get("/api/users/me", headers=user).status_code == 200


class _Upstream:
    """A TCP server that reads each request, then closes the connection without an answer
    (``mode="hang up"``) or holds it open without a word (``mode="silent"``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            if self.mode == "hang up":
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(params=["hang up", "silent"])
def misbehaving(request: pytest.FixtureRequest, app_stack: Stack
                ) -> Iterator[tuple[str, TestClient]]:
    upstream = _Upstream(request.param)
    settings = app_stack.settings.model_copy(update={"diagram_port": upstream.port})
    app = create_app(settings)
    # The shipped read timeout is 60 s; a second is enough to show the mapping.
    app.state.http.timeout = httpx.Timeout(connect=5.0, read=1.0, write=5.0, pool=5.0)
    try:
        yield request.param, TestClient(app, raise_server_exceptions=False)
    finally:
        upstream.close()


def test_a_service_that_hangs_up_is_502_and_one_that_says_nothing_is_504_both_named(
        misbehaving: tuple[str, TestClient]) -> None:
    mode, client = misbehaving
    answer = client.get("/api/diagrams/some-id")
    expected = {"hang up": (502, "the diagram service failed to answer"),
                "silent": (504, "the diagram service did not answer in time")}[mode]
    assert (answer.status_code, answer.json()) == (expected[0], {"detail": expected[1]})
