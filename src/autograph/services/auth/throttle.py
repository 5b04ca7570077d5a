"""Login throttling: exponential backoff per (account, client), per client and per account.

A lockout anyone can trigger (ten wrong passwords for ``admin@autograph.local`` from anywhere
locking it for everyone) is a denial of service, so each counter only makes its own attempts
wait, and the one shared by every client (the account's) waits at most ``ACCOUNT.cap``
seconds. A refused attempt changes nothing (hammering does not extend anyone's wait); every
admitted attempt counts until it succeeds. Counters live in Redis and are forgotten after
``WINDOW_SECONDS`` without a failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import Request

from autograph.errors import AutographError

WINDOW_SECONDS = 900
_PREFIX = "autograph:login-throttle:"


@dataclass(frozen=True)
class Limit:
    """``free`` attempts, then a wait of 2^(n - free + 1) seconds after the n-th failed one
    (counted from its end), up to ``cap``."""

    scope: str
    free: int
    cap: float

    def wait(self, count: int) -> float:
        """Seconds to wait after the last attempt when ``count`` attempts have counted."""
        return 0.0 if count < self.free else min(2.0 ** (count - self.free + 1), self.cap)


PAIR = Limit("pair", free=5, cap=900)  # one client guessing one account's password
CLIENT = Limit("client", free=20, cap=900)  # one client trying many accounts
ACCOUNT = Limit("account", free=10, cap=30)  # many clients against one account: short waits


class TooManyAttempts(AutographError):
    """Too many failed logins recently: wait ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


def client_address(request: Request) -> str:
    """The client's address: the peer, or, when the peer is a local proxy (the gateway, the
    frontend in front of it), the nearest non-loopback address the proxies appended to
    X-Forwarded-For (each appends its own peer, so a remote client cannot forge it)."""
    peer = request.client.host if request.client else ""
    if not _loopback(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed(hops):
        if hop and not _loopback(hop):
            return hop[:64]
    return peer


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _key(limit: Limit, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(p.lower() for p in parts).encode()).hexdigest()
    return f"{_PREFIX}{limit.scope}:{digest}"


class LoginThrottle:
    """The three counters of one login attempt (account e-mail, client address)."""

    def __init__(self, redis: aioredis.Redis, email: str, client: str) -> None:
        self.redis = redis
        self.keys = [(PAIR, _key(PAIR, email, client)), (CLIENT, _key(CLIENT, client)),
                     (ACCOUNT, _key(ACCOUNT, email))]

    async def admit(self) -> None:
        """Count this attempt, or raise TooManyAttempts (429, Retry-After) changing nothing."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for _limit, key in self.keys:
                pipe.hmget(key, "count", "last")
            rows = await pipe.execute()
        for (limit, _), (count, last) in zip(self.keys, rows, strict=True):
            left = limit.wait(int(count or 0)) - (now - float(last or 0))
            if left > 0:
                who = {"pair": "this account from your address", "client": "your address",
                       "account": "this account"}[limit.scope]
                raise TooManyAttempts(f"too many failed logins for {who}; retry in "
                                      f"{math.ceil(left)} s", math.ceil(left))
        async with self.redis.pipeline(transaction=True) as pipe:
            for _limit, key in self.keys:
                pipe.hincrby(key, "count", 1)
                pipe.hset(key, "last", repr(now))
                pipe.expire(key, WINDOW_SECONDS)
            await pipe.execute()

    async def failed(self) -> None:
        """The password did not match: the waits start now (a slow check is not a gift)."""
        now = repr(time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            for _limit, key in self.keys:
                pipe.hset(key, "last", now)
            await pipe.execute()

    async def succeeded(self) -> None:
        """The password matched: the account's counters restart; the client's attempt is
        taken back."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys[0][1], self.keys[2][1])
            pipe.hincrby(self.keys[1][1], "count", -1)
            pipe.expire(self.keys[1][1], WINDOW_SECONDS)
            await pipe.execute()
