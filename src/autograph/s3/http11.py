"""A minimal HTTP/1.1 client connection for the S3 engine: one keep-alive socket, requests sent
in one write, responses parsed with byte splits, bodies read straight into the caller's buffers.

``http.client`` parses every response head with the ``email`` package; for thousands of small
GETs that costs more CPU than the transfer itself. This does only what S3 needs: a status line,
headers, and a body framed by Content-Length, chunked encoding or the end of the connection.
Errors are ``OSError`` (network, timeouts) or :class:`ProtocolError` (a malformed response).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Mapping

MAX_HEAD = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})


class ProtocolError(OSError):
    """The server's answer is not valid HTTP/1.1 (or the connection ended mid-answer)."""


class Link:
    """One connection to ``host:port`` (TLS when ``tls`` is given), reused while it is clean.

    Use: :meth:`send`, then :meth:`read_head`, then :meth:`readinto`/:meth:`read` until they
    return nothing; :attr:`reusable` then says whether the next request may use it.
    """

    def __init__(
        self, host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        self._buffer = b""
        self._left = 0  # body bytes left (length mode) or in the current chunk (chunked mode)
        self._mode = "none"  # "length" | "chunked" | "close" | "none"
        self._done = True
        self.reusable = True

    def close(self) -> None:
        self.reusable = False
        with contextlib.suppress(OSError):
            self._sock.close()

    # Sending -------------------------------------------------------------------------------
    def send(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | bytearray | memoryview = b"",
    ) -> None:
        """Send one request (headers as given; Content-Length added for a body or PUT/POST when
        the headers lack it)."""
        if not self._done:
            raise ProtocolError("the previous response was not read to its end")
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if (body or method in ("PUT", "POST")) and not any(
            name.lower() == "content-length" for name in headers
        ):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._method = method
        if body and len(body) <= 64 * 1024:
            self._sock.sendall(head + bytes(body))
        else:
            self._sock.sendall(head)
            if body:
                self._sock.sendall(body)

    # Receiving -----------------------------------------------------------------------------
    def _fill(self) -> bytes:
        data = self._sock.recv(256 * 1024)
        if not data:
            raise ProtocolError("the server closed the connection")
        return data

    def read_head(self) -> tuple[int, dict[str, str]]:
        """The response's status and headers (names lower-cased, repeated ones joined)."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError("response head too large")
            self._buffer += self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:80]!r}")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self._frame(status, headers)
        if status == 100:
            return self.read_head()
        return status, headers

    def _frame(self, status: int, headers: dict[str, str]) -> None:
        self.reusable = headers.get("connection", "").lower() != "close"
        self._done = False
        if self._method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200:
            self._mode, self._left = "length", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode, self._left = "chunked", -1
        elif "content-length" in headers:
            self._mode, self._left = "length", int(headers["content-length"])
        else:
            self._mode, self._left, self.reusable = "close", -1, False
        if self._mode == "length" and self._left == 0:
            self._done = True

    @property
    def finished(self) -> bool:
        """The body has been read to its end."""
        return self._done

    def _chunk_size(self) -> int:
        while b"\r\n" not in self._buffer:
            self._buffer += self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None

    def _skip_crlf(self) -> None:
        while len(self._buffer) < 2:
            self._buffer += self._fill()
        if self._buffer[:2] != b"\r\n":
            raise ProtocolError("bad chunk end")
        self._buffer = self._buffer[2:]

    def readinto(self, view: memoryview) -> int:
        """Read body bytes into ``view``; 0 once the body has ended."""
        if self._done or not len(view):
            return 0
        if self._mode == "chunked" and self._left <= 0:
            if self._left == 0:
                self._skip_crlf()
            self._left = self._chunk_size()
            if self._left == 0:
                while b"\r\n\r\n" not in b"\r\n" + self._buffer:  # trailers end with a blank
                    self._buffer += self._fill()
                self._buffer = (b"\r\n" + self._buffer).split(b"\r\n\r\n", 1)[1]
                self._done = True
                return 0
        want = len(view) if self._mode == "close" else min(len(view), self._left)
        if self._buffer:
            got = min(want, len(self._buffer))
            view[:got] = self._buffer[:got]
            self._buffer = self._buffer[got:]
        else:
            got = self._sock.recv_into(view[:want])
            if not got:
                if self._mode == "close":
                    self._done = True
                    return 0
                raise ProtocolError("the connection ended inside a response body")
        if self._mode != "close":
            self._left -= got
            if self._mode == "length" and self._left == 0:
                self._done = True
        return got

    def read(self, size: int) -> bytearray:
        """Up to ``size`` body bytes (fewer only at the end); empty once it has ended."""
        if self._mode == "length":
            size = min(size, self._left)
        buffer = bytearray(size)
        view = memoryview(buffer)
        done = 0
        while done < size:
            got = self.readinto(view[done:])
            if not got:
                break
            done += got
        view.release()
        del buffer[done:]
        return buffer
