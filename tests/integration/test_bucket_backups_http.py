"""The S3 engine's HTTP/1.1 link against a loopback server answering canned bytes: every body
framing S3 servers use, keep-alive reuse, and malformed or cut answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from autograph.s3.http11 import Link, ProtocolError


class Canned:
    """Accepts one connection and answers each request with the next canned response."""

    def __init__(self, answers: list[bytes]) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.requests: list[bytes] = []
        self._answers = answers
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            pending = b""
            for answer in self._answers:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                head, pending = pending.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(pending) < length:
                    pending += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + pending[:length])
                pending = pending[length:]
                conn.sendall(answer)
            conn.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def serve() -> Iterator[type[Canned]]:
    made: list[Canned] = []

    class Tracked(Canned):
        def __init__(self, answers: list[bytes]) -> None:
            super().__init__(answers)
            made.append(self)

    yield Tracked
    for server in made:
        server.close()


def _body(link: Link, size: int = 7) -> bytes:
    parts = []
    while chunk := link.read(size):
        parts.append(bytes(chunk))
    return b"".join(parts)


def test_length_chunked_and_head_answers_on_one_kept_alive_connection(
        serve: type[Canned]) -> None:
    server = serve([
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nETag: \"e1\"\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Amz-Meta-Owner: ann\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ])
    link = Link("127.0.0.1", server.port, timeout=5)
    link.send("GET", "/b/k", {"host": "h"})
    assert link.read_head() == (200, {"content-length": "11", "etag": '"e1"'})
    assert _body(link) == b"hello world" and link.finished and link.reusable
    link.send("GET", "/b/k2", {"host": "h"})
    status, headers = link.read_head()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert _body(link, 3) == b"hello world" and link.finished
    link.send("HEAD", "/b/k3", {"host": "h"})
    assert link.read_head()[1]["x-amz-meta-owner"] == "ann"
    assert _body(link) == b"" and link.finished
    link.send("PUT", "/b/k4", {"host": "h"}, b"payload")
    assert link.read_head()[0] == 204 and link.finished
    assert server.requests[3].endswith(b"Content-Length: 7\r\n\r\npayload")
    link.close()


def test_readinto_fills_the_callers_buffer_and_a_close_delimited_body_ends_at_eof(
        serve: type[Canned]) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100_000])
    link = Link("127.0.0.1", server.port, timeout=5)
    link.send("GET", "/b/k", {"host": "h"})
    assert link.read_head()[0] == 200
    buffer = bytearray(150_000)
    view = memoryview(buffer)
    done = 0
    while got := link.readinto(view[done:]):
        done += got
    assert done == 100_000 and bytes(buffer[:done]) == b"x" * 100_000
    assert link.finished and not link.reusable


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"",
], ids=["cut-body", "bad-chunk", "not-http", "bad-header", "nothing"])
def test_malformed_or_cut_answers_raise_protocol_errors(serve: type[Canned],
                                                        answer: bytes) -> None:
    server = serve([answer])
    link = Link("127.0.0.1", server.port, timeout=5)
    link.send("GET", "/b/k", {"host": "h"})
    with pytest.raises(ProtocolError):
        link.read_head()
        _body(link)
    link.close()


def test_a_new_request_before_the_body_is_read_is_refused(serve: type[Canned]) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"])
    link = Link("127.0.0.1", server.port, timeout=5)
    link.send("GET", "/b/k", {"host": "h"})
    link.read_head()
    with pytest.raises(ProtocolError, match="not read to its end"):
        link.send("GET", "/b/k2", {"host": "h"})
    link.close()
