"""Streaming reverse proxy from the gateway to the auth and diagram services."""

from __future__ import annotations

import re
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from autograph.config import Settings
from autograph.errors import AutographError, DependencyDown, InvalidInput

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "x-request-id",
})
NOT_RETURNED = HOP_BY_HOP | {"date", "server"}  # the gateway's own server sets these
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadGateway(AutographError):
    """An upstream service broke the exchange."""

    http_status = 502


class GatewayTimeout(AutographError):
    """An upstream service did not answer in time."""

    http_status = 504


def _no_cookies() -> CookieJar:
    """A jar that refuses every cookie: a proxy's shared client must never keep one caller's
    Set-Cookie (e.g. the DR console session) and replay it for the next caller."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The pooled HTTP client used to reach the services (bounded timeouts, no cookie jar)."""
    return httpx.AsyncClient(
        cookies=_no_cookies(),
        # A refused connection fails at once (a service down is named without waiting); the
        # connect timeout only bounds a slow accept, and on a loaded machine the gateway's own
        # loop can be late by seconds (2 s gave 503s under a steady load of creates).
        timeout=httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0),
        # Idle connections are dropped well before the services' keep-alive timeout ends:
        # reusing one the service is closing would fail the request (a 502).
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50,
                            keepalive_expiry=2.0),
        follow_redirects=False,
        trust_env=False,
    )


def _request_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The client's headers as raw bytes (a non-ASCII value passes through as it came), minus
    hop-by-hop ones; a Content-Length beside Transfer-Encoding is dropped (the body is sent
    chunked, whatever the client declared)."""
    chunked = "transfer-encoding" in request.headers
    headers = [(k, v) for k, v in request.headers.raw
               if k.decode("latin-1").lower() not in HOP_BY_HOP
               and not (chunked and k.lower() == b"content-length")]
    client = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    value = f"{forwarded}, {client}" if forwarded else client
    headers.append((b"x-forwarded-for", value.encode("latin-1", "replace")))
    headers.append((b"x-forwarded-proto", request.url.scheme.encode()))
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    return headers


def upstream_url(request: Request, base_url: str) -> httpx.URL:
    """The upstream URL: the path as the client encoded it (``%2f`` stays ``%2f``), never one
    with control characters or ``.``/``..`` segments once decoded (InvalidInput: 400)."""
    decoded = request.url.path
    if _CONTROL.search(decoded) or _CONTROL.search(request.url.query):
        raise InvalidInput("control characters are not allowed in the URL")
    if any(part in (".", "..") for part in decoded.split("/")):
        raise InvalidInput("'.' and '..' segments are not allowed in the URL path")
    raw = request.scope.get("raw_path") or decoded.encode()
    try:
        return httpx.URL(base_url + raw.decode("latin-1"), query=request.url.query.encode())
    except httpx.InvalidURL:
        raise InvalidInput("malformed URL") from None


async def forward(request: Request, client: httpx.AsyncClient, service: str,
                  base_url: str) -> StreamingResponse:
    """Send the request to ``base_url`` with the same path, query and body (streamed both
    ways). InvalidInput (400) for a URL we will not pass on or a client that went away
    mid-body, DependencyDown (503) when the service is unreachable, GatewayTimeout (504) when
    it is too slow, BadGateway (502) when it breaks the connection."""
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    upstream = client.build_request(
        request.method,
        upstream_url(request, base_url),
        headers=_request_headers(request),
        content=request.stream() if has_body else None,
    )
    try:
        response = await client.send(upstream, stream=True)
    except ClientDisconnect:
        raise InvalidInput("the client closed the connection before the end of the body") \
            from None
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
        raise DependencyDown(f"the {service} service is unavailable") from None
    except httpx.TimeoutException:
        raise GatewayTimeout(f"the {service} service did not answer in time") from None
    except httpx.TransportError:
        raise BadGateway(f"the {service} service failed to answer") from None
    proxied = StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                background=BackgroundTask(response.aclose))
    proxied.raw_headers = [(k, v) for k, v in response.headers.raw
                           if k.decode("latin-1").lower() not in NOT_RETURNED]
    return proxied
