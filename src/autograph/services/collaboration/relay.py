"""A WebSocket relay for the gateway: ``/api/collab/ws/{diagram_id}`` forwarded to the
collaboration service, frames and close codes passed through both ways.

The gateway includes ``relay_router`` so browsers need only the gateway's origin; clients
may also connect to the collaboration service (port 8083) directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

from fastapi import APIRouter, WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from autograph.services.collaboration.routes import MAX_FRAME_BYTES

relay_router = APIRouter()

_RESERVED_CODES = {1005, 1006, 1015}  # never sent in a close frame


def _close_code(code: int | None) -> int:
    if code is None or code in _RESERVED_CODES:
        return 1011
    return code


async def _client_to_upstream(websocket: WebSocket, upstream: ClientConnection) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(_close_code(message.get("code")))
            return
        if message.get("text") is not None:
            await upstream.send(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _upstream_to_client(websocket: WebSocket, upstream: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for frame in upstream:
            if isinstance(frame, str):
                await websocket.send_text(frame)
            else:
                await websocket.send_bytes(frame)
    await websocket.close(_close_code(upstream.close_code), upstream.close_reason or "")


@relay_router.websocket("/api/collab/ws/{diagram_id}")
async def relay(websocket: WebSocket, diagram_id: UUID) -> None:
    """Relay a collaboration room connection to the collaboration service."""
    settings = websocket.app.state.settings
    target = settings.service_url("collaboration").replace("http://", "ws://", 1)
    url = f"{target}/api/collab/ws/{diagram_id}"
    if websocket.url.query:
        url += "?" + websocket.url.query
    await websocket.accept()
    try:
        upstream = await connect(url, open_timeout=5, max_size=MAX_FRAME_BYTES * 4,
                                 proxy=None)
    except (OSError, InvalidHandshake, TimeoutError):
        await websocket.close(1011, "the collaboration service is unavailable")
        return
    async with upstream:
        tasks = [asyncio.create_task(_client_to_upstream(websocket, upstream)),
                 asyncio.create_task(_upstream_to_client(websocket, upstream))]
        _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
