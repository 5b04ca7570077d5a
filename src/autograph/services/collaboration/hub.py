"""Rooms of live editors, shared by every replica through Redis pub/sub.

Each replica keeps its own WebSocket clients per diagram room and one pattern subscription
to ``autograph:collab:room:*``; a message published by any replica reaches the clients of
every replica. Presence lives in a Redis hash per room, refreshed by each replica for its
own clients; entries not refreshed for ``PRESENCE_STALE_SECONDS`` (a crashed replica) are
dropped when read. Edit operations get a per-room sequence number (Redis ``INCR``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("autograph.collaboration")

CHANNEL_PREFIX = "autograph:collab:room:"
PRESENCE_PREFIX = "autograph:collab:presence:"
SEQUENCE_PREFIX = "autograph:collab:seq:"
HEARTBEAT_SECONDS = 10.0
PRESENCE_STALE_SECONDS = 35.0
OUTBOX_SIZE = 1000


@dataclass
class Client:
    """One connected editor: its identity and the queue its writer task drains."""

    diagram_id: str
    user_id: int
    email: str
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    joined_at: float = field(default_factory=time.time)
    outbox: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(OUTBOX_SIZE))
    overflowed: bool = False

    def member(self) -> dict[str, Any]:
        """The presence entry of this client."""
        return {"client_id": self.client_id, "user_id": self.user_id, "email": self.email,
                "joined_at": self.joined_at}

    def offer(self, text: str) -> None:
        """Queue a frame; a client too slow to keep up is marked and disconnected."""
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.outbox.get_nowait()
            self.outbox.put_nowait(None)


class RoomHub:
    """The rooms of this replica and their link to Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.rooms: dict[str, dict[str, Client]] = {}
        self.replica = uuid.uuid4().hex[:12]
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    # Lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the subscriber and the presence heartbeat."""
        self._tasks = [asyncio.create_task(self._subscriber(), name="collab-subscriber"),
                       asyncio.create_task(self._heartbeat(), name="collab-heartbeat")]

    async def stop(self) -> None:
        """Stop the background tasks and forget this replica's presence entries."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for diagram_id, clients in list(self.rooms.items()):
            with contextlib.suppress(redis.exceptions.RedisError):
                if clients:
                    await self.redis.hdel(PRESENCE_PREFIX + diagram_id, *clients)

    # Rooms --------------------------------------------------------------------------------
    async def join(self, client: Client,
                   greeting: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        """Record the client's presence, queue ``greeting(members)`` as its first frame, add
        it to its room and tell the room.

        Raises redis.exceptions.RedisError when Redis is unavailable (nothing is kept then).
        """
        await self._touch(client.diagram_id, [client])
        members = await self.members(client.diagram_id)
        client.offer(json.dumps(greeting(members)))
        self.rooms.setdefault(client.diagram_id, {})[client.client_id] = client
        try:
            await self.publish(client.diagram_id, {
                "type": "presence", "event": "join", "client_id": client.client_id,
                "from": client.client_id,
                "user": {"id": client.user_id, "email": client.email}, "members": members})
        except redis.exceptions.RedisError:
            self._forget(client)
            raise

    async def leave(self, client: Client) -> None:
        """Remove a client and tell the room (best effort when Redis is down)."""
        self._forget(client)
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.redis.hdel(PRESENCE_PREFIX + client.diagram_id, client.client_id)
            members = await self.members(client.diagram_id)
            await self.publish(client.diagram_id, {
                "type": "presence", "event": "leave", "client_id": client.client_id,
                "user": {"id": client.user_id, "email": client.email}, "members": members})

    def _forget(self, client: Client) -> None:
        room = self.rooms.get(client.diagram_id, {})
        room.pop(client.client_id, None)
        if not room:
            self.rooms.pop(client.diagram_id, None)

    async def members(self, diagram_id: str) -> list[dict[str, Any]]:
        """Who is in a room on any replica, oldest first (stale entries are removed)."""
        key = PRESENCE_PREFIX + diagram_id
        entries = await self.redis.hgetall(key)
        now, live, stale = time.time(), [], []
        for client_id, raw in entries.items():
            entry = json.loads(raw)
            if now - float(entry.get("seen_at", 0)) > PRESENCE_STALE_SECONDS:
                stale.append(client_id)
            else:
                entry.pop("seen_at", None)
                live.append(entry)
        if stale:
            await self.redis.hdel(key, *stale)
        return sorted(live, key=lambda e: (e["joined_at"], e["client_id"]))

    async def next_sequence(self, diagram_id: str) -> int:
        """The room's next edit sequence number."""
        key = SEQUENCE_PREFIX + diagram_id
        number = int(await self.redis.incr(key))
        await self.redis.expire(key, 7 * 24 * 3600)
        return number

    async def publish(self, diagram_id: str, message: dict[str, Any]) -> None:
        """Send a message to every client of the room, on every replica."""
        await self.redis.publish(CHANNEL_PREFIX + diagram_id, json.dumps(message))

    def deliver(self, diagram_id: str, message: dict[str, Any]) -> int:
        """Hand a room message to this replica's clients except its sender (``from``);
        returns how many clients got it."""
        text = json.dumps(message)
        sender = message.get("from")
        count = 0
        for client in list(self.rooms.get(diagram_id, {}).values()):
            if client.client_id != sender:
                client.offer(text)
                count += 1
        return count

    # Background ---------------------------------------------------------------------------
    async def _touch(self, diagram_id: str, clients: list[Client]) -> None:
        key = PRESENCE_PREFIX + diagram_id
        now = time.time()
        mapping: dict[Any, Any] = {c.client_id: json.dumps({**c.member(), "seen_at": now})
                                   for c in clients}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, int(PRESENCE_STALE_SECONDS * 2))
            await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            for diagram_id, clients in list(self.rooms.items()):
                if clients:
                    try:
                        await self._touch(diagram_id, list(clients.values()))
                    except redis.exceptions.RedisError as exc:
                        log.warning("presence refresh failed: %s", exc)

    async def _subscriber(self) -> None:
        """Receive every room message from Redis and deliver it locally; reconnect after a
        Redis failure (clients meanwhile see no messages from other replicas)."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    diagram_id = str(message["channel"])[len(CHANNEL_PREFIX):]
                    if diagram_id in self.rooms:
                        self.deliver(diagram_id, json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                self.subscribed.clear()
                log.warning("room subscription lost, reconnecting: %s", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
