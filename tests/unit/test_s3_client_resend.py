"""The bulk S3 client re-sends idempotent requests after a broken link, never a POST.

A real TCP server on loopback answers like S3 would or drops the connection after reading a
request (what a crashed proxy or a server restart does); we count what reached it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from autograph.errors import DependencyDown
from autograph.s3.bulk import S3Client
from autograph.s3.sigv4 import S3Endpoint

OK = (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: \"e1\"\r\n"
      b"Connection: keep-alive\r\n\r\n")
UPLOAD = (b'<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
          b"<UploadId>u1</UploadId>"
          b"</InitiateMultipartUploadResult>")


class DroppingServer:
    """Reads each request; drops the link for the first ``drops`` of them, then answers."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.seen: list[str] = []
        self.links = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.links += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn:
            while True:
                line = reader.readline()
                if not line:
                    return
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reader.read(length)
                self.seen.append(line.split()[0].decode())
                if len(self.seen) <= self.drops:
                    return  # drop the link after the request arrived
                body = UPLOAD if line.startswith(b"POST") else b""
                conn.sendall(OK.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body))
                             + body)


@pytest.fixture
def server() -> Iterator[DroppingServer]:
    srv = DroppingServer(drops=1)
    yield srv
    srv.sock.close()


def client(port: int) -> S3Client:
    return S3Client(S3Endpoint(f"http://127.0.0.1:{port}", "k", "s"), timeout=5, retries=2)


def test_put_is_resent_after_the_link_drops(server: DroppingServer) -> None:
    etag = client(server.port).put_object("b", "k", b"data")
    assert etag == "e1"
    assert server.seen == ["PUT", "PUT"]


def test_post_is_never_resent_once_it_may_have_arrived(server: DroppingServer) -> None:
    with pytest.raises(DependencyDown, match="not re-sent"):
        client(server.port).create_multipart("b", "k")
    assert server.seen == ["POST"]


def test_post_goes_out_on_a_fresh_link() -> None:
    srv = DroppingServer(drops=0)
    try:
        s3 = client(srv.port)
        s3.put_object("b", "k", b"data")          # leaves one idle keep-alive link
        assert s3.create_multipart("b", "k") == "u1"
        assert srv.seen == ["PUT", "POST"]
        assert srv.links == 2  # the idle keep-alive link was not used for the POST
    finally:
        srv.sock.close()
