"""The frontend (port 3000): ``uvicorn autograph.services.frontend.app:create_app --factory``.

Static HTML/JS (no build step) and a same-origin proxy of ``/api/*`` to the gateway, so the
browser talks to one origin and no CORS is needed. Pages: login, diagrams (list, create,
generate from text, preview as SVG) and the DR dashboard.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from starlette.responses import StreamingResponse

from autograph.config import Settings, load_settings
from autograph.errors import NotFound
from autograph.logs import setup_logging
from autograph.services.common.app import HealthCheck
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.resources import Resources
from autograph.services.gateway.proxy import forward, make_client

STATIC = Path(__file__).parent / "static"
PAGES = ("index.html", "main.js", "api.js", "diagrams.js", "console.js", "console_actions.js",
         "console_drills.js", "console_recovery.js", "console_tiles.js",
         "style.css")
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "script-src 'self'; style-src 'self'; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=MEDIA[Path(name).suffix],
                        headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The single-page UI."""
    return _page("index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    """The UI's script and style sheet (a fixed list: no request path reaches the disk)."""
    if name not in PAGES:
        raise NotFound("no such file")
    return _page(name)


async def _proxy(request: Request) -> StreamingResponse:
    settings: Settings = request.app.state.settings
    return await forward(request, request.app.state.http, "gateway",
                         settings.service_url("gateway"))


router.add_api_route("/api/{path:path}", _proxy, methods=METHODS, include_in_schema=False)


def gateway_check(settings: Settings) -> HealthCheck:
    """The gateway answers HTTP (whatever its own health: the UI shows that)."""

    async def check() -> str:
        async with httpx.AsyncClient(timeout=3.0, trust_env=False) as client:
            response = await client.get(f"{settings.service_url('gateway')}/health")
        return f"gateway reachable ({response.json().get('status', response.status_code)})"

    return check


def static_check() -> HealthCheck:
    """The UI's files are installed."""

    async def check() -> str:
        missing = [name for name in PAGES if not (STATIC / name).is_file()]
        if missing:
            raise FileNotFoundError(f"missing {', '.join(missing)}")
        return "ok"

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    """The web UI and its same-origin API proxy."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    http = make_client(settings)

    async def close_http(_resources: Resources) -> None:
        await http.aclose()

    app = create_service_app(
        "AutoGraph frontend", settings, [router],
        {"static": static_check(), "gateway": gateway_check(settings)},
        resources=resources, on_shutdown=[close_http],
        description="Web UI: diagrams and the disaster-recovery dashboard.",
    )
    app.state.http = http
    return app
