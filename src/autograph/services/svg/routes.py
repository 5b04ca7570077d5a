"""Routes of the SVG renderer: ``POST /api/render/{svg,png,pdf}`` (diagram JSON in, image out)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from autograph.services.common.deps import CurrentUser
from autograph.services.svg.draw_pdf import render_pdf
from autograph.services.svg.draw_png import render_png
from autograph.services.svg.draw_svg import render_svg
from autograph.services.svg.scene import build_scene

router = APIRouter(prefix="/api/render", tags=["render"])

SAFE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff"}
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}


class RenderRequest(BaseModel):
    """A diagram canvas (``nodes``, ``edges``; see ``scene``) and an optional title."""

    canvas: dict[str, Any]
    title: str = Field(default="", max_length=200)


def render(canvas: dict[str, Any], fmt: str, title: str = "") -> bytes:
    """Render a canvas as ``svg``, ``png`` or ``pdf`` bytes; InvalidInput for a bad canvas."""
    scene = build_scene(canvas, title)
    if fmt == "svg":
        return render_svg(scene).encode()
    if fmt == "png":
        return render_png(scene)
    return render_pdf(scene)


async def _answer(body: RenderRequest, fmt: str) -> Response:
    data = await asyncio.to_thread(render, body.canvas, fmt, body.title)
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=SAFE_HEADERS)


@router.post("/svg", response_class=Response,
             responses={200: {"content": {"image/svg+xml": {}}}})
async def render_svg_route(body: RenderRequest, _user: CurrentUser) -> Response:
    """Render a diagram canvas as SVG (every label escaped, no scripts)."""
    return await _answer(body, "svg")


@router.post("/png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def render_png_route(body: RenderRequest, _user: CurrentUser) -> Response:
    """Render a diagram canvas as a PNG image."""
    return await _answer(body, "png")


@router.post("/pdf", response_class=Response,
             responses={200: {"content": {"application/pdf": {}}}})
async def render_pdf_route(body: RenderRequest, _user: CurrentUser) -> Response:
    """Render a diagram canvas as a one-page vector PDF."""
    return await _answer(body, "pdf")
