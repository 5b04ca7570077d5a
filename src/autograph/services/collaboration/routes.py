"""Routes of the collaboration service: the room WebSocket and the room's member list.

``WS /api/collab/ws/{diagram_id}?token=…`` (or, without ``token``, a first frame
``{"type": "auth", "token": …}`` within 10 s). Frames are JSON text:

- client → server: ``{"type": "op", "data": {…}, "ref"?}`` (an edit: numbered, sent to the
  room, acknowledged to the sender with ``{"type": "ack", "seq", "ref"}``);
  ``{"type": "cursor", "data": {…}}`` (sent to the room, not numbered);
  ``{"type": "ping"}`` → ``{"type": "pong"}``.
- server → client: ``welcome`` (client id, user, members), ``op``, ``cursor``
  (with ``from`` and ``user``), ``presence`` (join/leave with the members), ``error``.

Close codes: 4400 bad frame, 4401 no or invalid token, 4404 not your diagram (or none),
4408 no auth frame in time, 1009 frame too large, 1011 Redis/PostgreSQL unavailable,
1013 client too slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from uuid import UUID

import psycopg
import redis.exceptions
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from autograph.errors import DependencyDown, NotFound
from autograph.services.collaboration.hub import Client, RoomHub
from autograph.services.common.deps import CurrentUser, get_resources
from autograph.services.common.resources import Resources
from autograph.services.common.security import Principal, read_session

router = APIRouter(prefix="/api/collab", tags=["collaboration"])

AUTH_TIMEOUT_SECONDS = 10.0
MAX_FRAME_BYTES = 256 * 1024


class Refused(Exception):
    """Close the socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def owns_diagram(resources: Resources, user_id: int, diagram_id: UUID) -> bool:
    """True when the user owns the diagram (read-only query on a short-lived connection, so
    no idle connection stands in the way of a database restore)."""
    async with await psycopg.AsyncConnection.connect(**resources.conninfo()) as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM diagrams WHERE id = %s AND owner_id = %s", (diagram_id, user_id))
        return await cursor.fetchone() is not None


async def _authenticate(websocket: WebSocket, resources: Resources, token: str | None,
                        diagram_id: UUID) -> Principal:
    if not token:
        try:
            first = json.loads(await asyncio.wait_for(websocket.receive_text(),
                                                      AUTH_TIMEOUT_SECONDS))
        except TimeoutError:
            raise Refused(4408, "send {\"type\": \"auth\", \"token\": …} first") from None
        except (ValueError, KeyError):
            raise Refused(4400, "the first frame must be a JSON auth frame") from None
        if not isinstance(first, dict) or first.get("type") != "auth":
            raise Refused(4401, "authenticate first: {\"type\": \"auth\", \"token\": …}")
        token = str(first.get("token") or "")
    try:
        principal = await read_session(resources.redis, token)
    except redis.exceptions.RedisError:
        raise Refused(1011, "Redis is unavailable") from None
    if principal is None or principal.user_id is None:
        raise Refused(4401, "invalid or expired token")
    try:
        if not await owns_diagram(resources, principal.user_id, diagram_id):
            raise Refused(4404, "diagram not found")
    except psycopg.OperationalError:
        raise Refused(1011, "PostgreSQL is unavailable") from None
    except DependencyDown as exc:  # e.g. the schema behind: the reason says what to run
        raise Refused(1011, exc.message[:120]) from None
    return principal


async def _writer(websocket: WebSocket, client: Client) -> None:
    while True:
        text = await client.outbox.get()
        if text is None:
            await websocket.close(1013, "too slow: messages were dropped")
            return
        await websocket.send_text(text)


async def _handle(hub: RoomHub, client: Client, frame: Any) -> None:
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        client.offer(json.dumps({"type": "error", "detail": "frames are JSON objects "
                                 "with a \"type\""}))
        return
    kind = frame["type"]
    user = {"id": client.user_id, "email": client.email}
    if kind == "ping":
        client.offer(json.dumps({"type": "pong"}))
    elif kind in ("op", "cursor") and isinstance(frame.get("data"), dict):
        message: dict[str, Any] = {"type": kind, "from": client.client_id, "user": user,
                                   "data": frame["data"]}
        if kind == "op":
            message["seq"] = await hub.next_sequence(client.diagram_id)
        await hub.publish(client.diagram_id, message)
        if kind == "op":
            client.offer(json.dumps({"type": "ack", "seq": message["seq"],
                                     "ref": frame.get("ref")}))
    else:
        client.offer(json.dumps({"type": "error",
                                 "detail": f"unknown or malformed frame of type {kind[:40]!r}"}))


@router.websocket("/ws/{diagram_id}")
async def room(websocket: WebSocket, diagram_id: UUID,
               token: str | None = Query(default=None, max_length=512)) -> None:
    """Join a diagram's editing room (see the module docstring for the protocol)."""
    await websocket.accept()
    resources = get_resources(websocket)  # type: ignore[arg-type]
    hub: RoomHub = websocket.app.state.hub
    try:
        principal = await _authenticate(websocket, resources, token, diagram_id)
    except Refused as refusal:
        await websocket.close(refusal.code, refusal.reason)
        return
    except WebSocketDisconnect:
        return
    assert principal.user_id is not None
    client = Client(diagram_id=str(diagram_id), user_id=principal.user_id,
                    email=principal.email)
    try:
        await hub.join(client, lambda members: {
            "type": "welcome", "client_id": client.client_id, "diagram_id": str(diagram_id),
            "user": {"id": client.user_id, "email": client.email}, "members": members})
    except redis.exceptions.RedisError:
        await websocket.close(1011, "Redis is unavailable")
        return
    writer = asyncio.create_task(_writer(websocket, client))
    closing: tuple[int, str] | None = None
    try:
        while not client.overflowed:
            text = await websocket.receive_text()
            if len(text.encode()) > MAX_FRAME_BYTES:
                raise Refused(1009, f"frames are limited to {MAX_FRAME_BYTES} bytes")
            try:
                frame = json.loads(text)
            except ValueError:
                raise Refused(4400, "frames must be JSON") from None
            await _handle(hub, client, frame)
    except (WebSocketDisconnect, RuntimeError, KeyError):
        pass  # the client went away (KeyError: a binary frame)
    except Refused as refusal:
        closing = (refusal.code, refusal.reason)
    except redis.exceptions.RedisError:
        closing = (1011, "Redis is unavailable")
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        if closing is not None:
            with contextlib.suppress(Exception):
                await websocket.close(*closing)
        await hub.leave(client)


class MembersPublic(BaseModel):
    """Who is editing a diagram right now, on any replica."""

    diagram_id: UUID
    members: list[dict[str, Any]]
    count: int


@router.get("/rooms/{diagram_id}/members")
async def members(diagram_id: UUID, user: CurrentUser, request: Request) -> MembersPublic:
    """The editors connected to one of your diagrams' rooms."""
    resources = get_resources(request)
    assert user.user_id is not None
    if not await owns_diagram(resources, user.user_id, diagram_id):
        raise NotFound("diagram not found")
    found = await request.app.state.hub.members(str(diagram_id))
    return MembersPublic(diagram_id=diagram_id, members=found, count=len(found))
