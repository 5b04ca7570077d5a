"""Test support for bucket backups: isolated buckets and backup folder per test on the session's
real S3 server, seeding with boto3 (an independent client), and an HTTP proxy in front of S3
that injects real network faults (refused connections, 5xx answers)."""

from __future__ import annotations

import http.client
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from autograph.config import Settings
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack


@dataclass
class Buckets:
    """A test's S3 handle (boto3), its settings, and a name factory for its own buckets."""

    client: Any
    settings: Settings
    token: str
    made: list[str] = field(default_factory=list)

    def name(self, stem: str) -> str:
        return f"t-{stem}-{self.token}"

    def make(self, stem: str, objects: dict[str, Any] | None = None) -> str:
        """Create bucket ``t-<stem>-<token>`` holding ``objects``: key -> bytes, or key ->
        (bytes, content type, metadata)."""
        return self._create(self.name(stem), objects)

    def make_app_bucket(self, objects: dict[str, Any] | None = None) -> str:
        """Create the settings' first application bucket holding ``objects`` (as ``make``)."""
        return self._create(self.settings.app_buckets[0], objects)

    def _create(self, bucket: str, objects: dict[str, Any] | None) -> str:
        self.client.create_bucket(Bucket=bucket)
        self.made.append(bucket)
        for key, value in (objects or {}).items():
            self.put(bucket, key, value)
        return bucket

    def put(self, bucket: str, key: str, value: Any) -> None:
        body, ctype, meta = value if isinstance(value, tuple) else (value, None, {})
        extra = {"ContentType": ctype} if ctype else {}
        self.client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=meta, **extra)

    def contents(self, bucket: str) -> dict[str, tuple[bytes, str, dict[str, str]]]:
        """Every object: key -> (bytes, content type, metadata)."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                got = self.client.get_object(Bucket=bucket, Key=item["Key"])
                found[item["Key"]] = (got["Body"].read(), got["ContentType"], got["Metadata"])
        return found

    def etags(self, bucket: str) -> dict[str, str]:
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["ETag"]
        return found

    def drop_all(self, keep: tuple[str, ...] = ()) -> None:
        """Drop every bucket of this test (``t-*-<token>``) but ``keep``: SeaweedFS gives each
        bucket several 1 GB volumes, so few may exist at once."""
        names = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        for bucket in sorted(n for n in names if n.endswith(self.token) and n not in keep):
            self.drop(bucket)

    def drop(self, bucket: str) -> None:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    self.client.delete_object(Bucket=bucket, Key=item["Key"])
            self.client.delete_bucket(Bucket=bucket)
        except Exception:
            pass


@contextmanager
def bucket_settings(stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    """Settings with a fresh backup folder, backup bucket and three application buckets (not
    created: tests create what they need); every ``t-*-<token>`` bucket is removed after."""
    token = secrets.token_hex(4)
    settings = stack.settings.model_copy(update={
        "backup_dir": tmp_path / "backups",
        "backup_bucket_objects": f"t-mbk-{token}",
        "app_buckets": (f"t-diagrams-{token}", f"t-exports-{token}", f"t-uploads-{token}"),
    })
    client = app_client(settings, stack.creds)
    client.create_bucket(Bucket=settings.backup_bucket_objects)
    handle = Buckets(client, settings, token, [settings.backup_bucket_objects])
    try:
        yield handle
    finally:
        handle.drop_all()


class S3Proxy:
    """An HTTP/1.1 proxy to a real S3 endpoint that can fail on purpose.

    ``cut_after(n)``: after ``n`` more requests, every open connection is dropped and the port
    refuses connections (S3 unreachable). ``fail_puts(key)``: PUTs of ``key`` answer 500.
    ``drop_idle``: every connection is closed after one answer, without saying so (as servers
    do with idle keep-alive connections). ``fail_once(method, marker, reach_server=...)``: the
    next request of ``method`` whose path and query contain ``marker`` answers 500, after the
    real server applied it or without it reaching the server. ``answer_headers``: a function
    rewriting the real server's answer headers (an SSE-KMS server's opaque ETags, say).
    ``seen`` lists every request as ``"METHOD path?query"``.
    """

    def __init__(self, target: str, port: int = 0) -> None:
        parts = urlsplit(target)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self.requests = 0
        self.methods: list[str] = []
        self.put_attempts: dict[str, int] = {}
        self.drop_idle = False
        self.get_delay = 0.0  # seconds each GET is held before it is relayed
        self.gets_in_flight = 0
        self.peak_gets = 0  # the most GETs relayed at the same time
        self._budget: int | None = None
        self._failing: set[str] = set()
        self._once: list[tuple[str, str, bool]] = []
        self.seen: list[str] = []
        self.answer_headers: Callable[[str, list[tuple[str, str]]], list[tuple[str, str]]] | None \
            = None
        self._lock = threading.Lock()
        self._dead = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def cut_after(self, requests: int) -> None:
        with self._lock:
            self._budget = requests

    def fail_puts(self, key: str) -> None:
        self._failing.add(key)

    def fail_once(self, method: str, marker: str, *, reach_server: bool) -> None:
        with self._lock:
            self._once.append((method, marker, reach_server))

    def _one_fault(self, method: str, target: str) -> bool | None:
        """None: no fault for this request; else whether it goes to the server first."""
        with self._lock:
            self.seen.append(f"{method} {target}")
            for fault in self._once:
                if fault[0] == method and fault[1] in target:
                    self._once.remove(fault)
                    return fault[2]
        return None

    def _send_500(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(500)
        body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _admit(self) -> bool:
        with self._lock:
            if self._dead.is_set():
                return False
            self.requests += 1
            if self._budget is not None:
                self._budget -= 1
                if self._budget < 0:
                    self._dead.set()
                    threading.Thread(target=self._die, daemon=True).start()
                    return False
            return True

    def _die(self) -> None:
        self._server.shutdown()
        self._server.socket.close()

    def close(self) -> None:
        if not self._dead.is_set():
            self._dead.set()
            self._die()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _relay(self) -> None:
                if not proxy._admit():
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.methods.append(self.command)
                key = unquote(self.path.split("?", 1)[0].split("/", 2)[-1])
                if self.command == "PUT":
                    with proxy._lock:
                        proxy.put_attempts[key] = proxy.put_attempts.get(key, 0) + 1
                    if key in proxy._failing:
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                fault = proxy._one_fault(self.command, self.path)
                if fault is False:
                    proxy._send_500(self)
                    return
                answer, data = self._upstream(body)
                headers = answer.getheaders()
                if proxy.answer_headers is not None:
                    headers = proxy.answer_headers(self.command, headers)
                if fault:
                    proxy._send_500(self)
                    return
                self.send_response(answer.status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding",
                                            "connection"):
                        self.send_header(name, value)
                size = answer.getheader("Content-Length", "0") if self.command == "HEAD" \
                    else str(len(data))
                self.send_header("Content-Length", size)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                if proxy.drop_idle:
                    self.close_connection = True

            def _upstream(self, body: bytes | None) -> tuple[Any, bytes]:
                counted = self.command == "GET"
                if counted:
                    with proxy._lock:
                        proxy.gets_in_flight += 1
                        proxy.peak_gets = max(proxy.peak_gets, proxy.gets_in_flight)
                    time.sleep(proxy.get_delay)
                upstream = http.client.HTTPConnection(proxy._host, proxy._port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body,
                                     headers=dict(self.headers.items()))
                    answer = upstream.getresponse()
                    return answer, answer.read()
                finally:
                    upstream.close()
                    if counted:
                        with proxy._lock:
                            proxy.gets_in_flight -= 1

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
