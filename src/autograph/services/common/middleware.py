"""Pure ASGI middleware shared by the services: request ids, access log, body size limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autograph.errors import AutographError

log = logging.getLogger("autograph.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(AutographError):
    """The request body is over the configured limit."""

    http_status = 413


class RequestContext:
    """Give every request an ``X-Request-ID``, log one JSON line per request, and refuse
    bodies over ``max_body_bytes`` with 413 (declared length up front, streamed length
    while it is read). An unhandled error is logged here once, with its traceback, and
    answered with a 500 JSON naming the request id; it goes no further (the server would log
    it again, and the access line would be lost)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, service: str) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message.setdefault("headers", [])
                extra = [(b"x-request-id", request_id.encode())]
                if not any(k.lower() == b"x-content-type-options" for k, _ in message["headers"]):
                    extra.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = -1
        if declared > self.max_body_bytes or declared < 0:
            detail = (f"request body over the limit of {self.max_body_bytes} bytes"
                      if declared > 0 else "invalid Content-Length header")
            await _json_response(send_with_id, 413 if declared > 0 else 400, detail)
        else:
            try:
                await self.app(scope, self._limited(receive), send_with_id)
            except Exception as exc:
                log.error("unhandled error (request %s)", request_id, exc_info=exc)
                if status.get("started"):
                    raise  # the answer is under way: only closing the connection is left
                status["code"] = 500
                await _json_response(send, 500, f"internal error (request id {request_id})",
                                     request_id)
        log.info("request", extra={
            "service": self.service, "method": scope["method"], "path": scope["path"],
            "status": status["code"], "request_id": request_id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        })

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(
                        f"request body over the limit of {self.max_body_bytes} bytes")
            return message

        return wrapped


async def _json_response(send: Send, status: int, detail: str,
                         request_id: str | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
