"""Admin sessions, the audit log and alert acknowledgements (``/api/admin/...``).

``POST /api/admin/session`` exchanges the break-glass key (sent once, as a bearer token) for a
30-minute session in an HttpOnly cookie, so the DR console never keeps the key.
:class:`AuditMiddleware` records every admin call that changes something (any method but GET
and HEAD) and every end of a job such a call started, with the caller's name.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autograph.clock import utc_now
from autograph.dr.alerts import acks
from autograph.dr.ops import audit, jobs
from autograph.errors import InvalidInput
from autograph.services.common import admin_sessions
from autograph.services.common.deps import AdminDep, ResourcesDep
from autograph.services.common.security import BREAK_GLASS, Forbidden

router = APIRouter(tags=["admin: console"])
public_router = APIRouter(prefix="/api/admin", tags=["admin: console"])
"""Routes that answer without an admin token (mounted by the gateway beside the admin API)."""
ALERT_KEY_MAX = 200


class SessionPublic(BaseModel):
    """The caller's admin identity and, for a session, when it ends."""

    actor: str | None
    expires_at: str | None = None


@router.post("/session", response_model=SessionPublic)
def create_session(principal: AdminDep, resources: ResourcesDep) -> JSONResponse:
    """Exchange the break-glass key for a short-lived admin session (HttpOnly cookie)."""
    if principal != BREAK_GLASS:
        raise Forbidden("only the admin API key can open an admin session")
    ttl = timedelta(seconds=resources.settings.admin_session_ttl_seconds)
    token, session = admin_sessions.create(resources.settings.secrets_dir, ttl)
    response = JSONResponse({"actor": f"admin session {session.id} (break-glass key)",
                             "expires_at": session.expires_at.isoformat()})
    response.set_cookie(admin_sessions.COOKIE, token, max_age=int(ttl.total_seconds()),
                        path="/api/admin", httponly=True, samesite="strict")
    return response


@public_router.get("/session", response_model=SessionPublic)
def read_session(request: Request, resources: ResourcesDep) -> SessionPublic:
    """The console's session from its cookie (``actor`` null when there is none): a reloaded
    page asks this instead of failing a protected call."""
    token = request.cookies.get(admin_sessions.COOKIE, "")
    session = admin_sessions.lookup(resources.settings.secrets_dir, token) if token else None
    if session is None:
        return SessionPublic(actor=None)
    return SessionPublic(actor=f"admin session {session.id} (break-glass key)",
                         expires_at=session.expires_at.isoformat())


@router.delete("/session", status_code=204)
def end_session(request: Request, resources: ResourcesDep) -> Response:
    """End the cookie's admin session (log out of the console)."""
    token = request.cookies.get(admin_sessions.COOKIE, "")
    if token:
        admin_sessions.revoke(resources.settings.secrets_dir, token)
    response = Response(status_code=204)
    response.delete_cookie(admin_sessions.COOKIE, path="/api/admin", httponly=True,
                           samesite="strict")
    return response


@router.get("/audit", response_model=list[audit.AuditEntry])
def read_audit(resources: ResourcesDep,
               limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[audit.AuditEntry]:
    """Admin actions, newest first: who, what, when, result."""
    return audit.read(resources.settings.dr_dir, limit)


def _alert_key(key: str) -> str:
    if not key or len(key) > ALERT_KEY_MAX or not key.isprintable():
        raise InvalidInput("alert key: 1-200 printable characters")
    return key


@router.get("/alerts/acks", response_model=dict[str, acks.AlertAck])
def list_acks(resources: ResourcesDep) -> dict[str, acks.AlertAck]:
    """Acknowledged and silenced alert keys."""
    return acks.load(resources.settings.dr_dir)


@router.post("/alerts/ack", response_model=acks.AlertAck)
def acknowledge(principal: AdminDep, resources: ResourcesDep,
                key: Annotated[str, Query(description="the alert key")],
                silence_minutes: Annotated[int, Query(ge=0, le=7 * 24 * 60)] = 0,
                ) -> acks.AlertAck:
    """Acknowledge an alert, optionally silencing it for some minutes (audited)."""
    return acks.record(resources.settings.dr_dir, _alert_key(key), principal.email, utc_now(),
                       timedelta(minutes=silence_minutes) if silence_minutes else None)


class AuditMiddleware:
    """Append an audit line for each admin call that changes something, and for the end of
    each job it started. Reads the admin's name from ``scope["state"]`` (set by get_admin)."""

    def __init__(self, app: ASGIApp, dr_dir: Any) -> None:
        self.app = app
        self.dr_dir = dr_dir
        self._job_actors: dict[str, str] = {}
        self._lock = threading.Lock()
        jobs.registry.add_listener(self._job_finished)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS")
                or not scope["path"].startswith("/api/admin/")):
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 500, "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body" and len(seen["body"]) < 4096:
                seen["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._record(scope, seen["status"], seen["body"])

    def _record(self, scope: Scope, status: int, body: bytes) -> None:
        actor = scope.get("state", {}).get("admin_actor") or "unauthenticated"
        job_id, detail = "", ""
        try:
            data = json.loads(body) if body else {}
            if isinstance(data, dict):
                job_id = str(data.get("job_id") or "")
                detail = str(data.get("detail") or "")[:300] if status >= 400 else ""
        except ValueError:
            pass
        result = ("accepted" if status == 202 else "ok" if status < 400
                  else "denied" if status in (401, 403) else "failed")
        query = scope.get("query_string", b"").decode("latin-1")[:300]
        if job_id:
            with self._lock:
                self._job_actors[job_id] = actor
        audit.append(self.dr_dir, audit.AuditEntry(
            at=utc_now(), actor=actor, action=f"{scope['method']} {scope['path']}"[:300],
            target=(query + (f" job={job_id}" if job_id else "")).strip(), status=status,
            result=result, detail=detail))

    def _job_finished(self, job: jobs.Job) -> None:
        with self._lock:
            actor = self._job_actors.pop(job.id, None)
        if actor is None:
            return
        audit.append(self.dr_dir, audit.AuditEntry(
            at=job.finished_at or utc_now(), actor=actor, action=f"job {job.kind}",
            target=f"job={job.id}", status=job.error_status or 200,
            result="ok" if job.status == "succeeded" else "failed",
            detail=(job.error or "")[:300]))
