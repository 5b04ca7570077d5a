"""The verification a recovery ends with (the plan's "Verify System"): every component's health,
a login and ``/api/users/me``, a diagram created and read back (then removed), an edit passed
between two editors of it (when the stack runs the collaboration service), an SVG export of it
(when it runs the export service), and every stored object reference pointing at an object
that exists.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

from autograph.clock import Clock, isoformat
from autograph.config import Settings
from autograph.dr.recovery.client import ApiClient
from autograph.dr.recovery.integrity import (
    OBJECT_REFERENCES,
    dangling_references,
    object_fingerprints,
    still_dangling,
)
from autograph.errors import AutographError
from autograph.s3.boto import app_client
from autograph.secrets import read_or_create
from autograph.stack.lifecycle import Stack

Check = dict[str, Any]
WAIT_SECONDS = 10.0
HEALTH_GRACE_SECONDS = 30.0


def admin_login(settings: Settings) -> tuple[str, str]:
    """The first admin's e-mail and password (the setting, else HOME/secrets/admin-password)."""
    if settings.admin_password is not None:
        return settings.admin_email, settings.admin_password.get_secret_value()
    path = settings.secrets_dir / "admin-password"
    if not path.exists():
        raise AutographError(f"no admin password: {path} is missing and "
                             "AUTOGRAPH_ADMIN_PASSWORD is not set")
    return settings.admin_email, read_or_create(path)


def uses_gateway(stack: Stack) -> bool:
    """True when the stack runs a gateway and it answers healthy."""
    return any(c.name == "gateway" and c.health().healthy for c in stack.components)


def _timed(clock: Clock, run: Callable[[], str]) -> Check:
    try:
        detail, ok = run(), True
    except AutographError as exc:
        detail, ok = exc.message, False
    except Exception as exc:  # a check reports every failure as its result
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail, "at": isoformat(clock())}


def verify(stack: Stack, clock: Clock,
           scan: Future[dict[str, Any]] | None = None) -> dict[str, Check]:
    """Run the checks; each is ``{"ok", "detail", "at"}``. Never raises. The object
    references are scanned while the other checks run (listing big buckets takes seconds),
    or earlier by the caller (``scan``, see :func:`start_reference_scan`); any dangling one is
    confirmed once the other checks are done."""
    scan = scan or start_reference_scan(stack)
    results = _service_checks(stack, clock)
    results["references"] = _timed(clock, lambda: _judge_references(stack, scan.result()))
    return results


def start_reference_scan(stack: Stack) -> Future[dict[str, Any]]:
    """List the buckets and find rows naming missing objects, in a background thread (a
    recovery starts it while the services start: it needs only PostgreSQL and S3)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="verify-references")
    try:
        return pool.submit(_scan_references, stack)
    finally:
        pool.shutdown(wait=False)


def _all_healthy(stack: Stack) -> str:
    """Every component healthy. A component that answers unhealthy is asked again for a while
    before it counts: on a loaded machine a background loop can miss one beat right after a
    start. Raises AutographError naming the unhealthy ones."""
    pending = list(stack.components)
    deadline = time.monotonic() + HEALTH_GRACE_SECONDS
    while True:
        bad = [(c, c.health()) for c in pending]
        pending = [c for c, answer in bad if not answer.healthy]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if pending:
        raise AutographError("unhealthy: " + ", ".join(
            f"{c.name} ({answer.detail[:80]})" for c, answer in bad if not answer.healthy))
    return f"{len(stack.components)} components healthy"


def _service_checks(stack: Stack, clock: Clock) -> dict[str, Check]:
    """Health of every component, then login, a diagram round trip, collaboration, export."""
    settings = stack.settings
    results: dict[str, Check] = {"health": _timed(clock, lambda: _all_healthy(stack))}
    if not any(c.kind == "service" for c in stack.components):
        results["authentication"] = {"ok": True, "detail": "no application services in this "
                                     "stack", "at": isoformat(clock()), "skipped": True}
        results["diagrams"] = dict(results["authentication"])
        return results
    api = ApiClient(settings, via_gateway=uses_gateway(stack))
    token: dict[str, str] = {}
    made: dict[str, Any] = {}
    try:
        def login() -> str:
            email, password = admin_login(settings)
            token["value"] = api.login(email, password)
            me = api.me(token["value"])
            return f"logged in as {me.get('email')} (role {me.get('role')})"

        results["authentication"] = _timed(clock, login)

        def diagram_round_trip() -> str:
            if "value" not in token:
                raise AutographError("not checked: no session (login failed)")
            canvas = {"nodes": [{"id": "dr", "label": "DR Test Diagram"}]}
            made.update(api.create_diagram(token["value"], "DR Test Diagram", canvas))
            read = api.get_diagram(token["value"], str(made["id"]))
            if read.get("canvas") != canvas:
                raise AutographError("the diagram read back differs from the one created")
            return f"created and read back diagram {made['id']}"

        results["diagrams"] = _timed(clock, diagram_round_trip)
        names = {c.name for c in stack.components}
        for name, check in (("collaboration", collaboration_check), ("export", export_check)):
            if name in names:
                results[name] = _timed(clock, functools.partial(
                    check, settings, token.get("value", ""), str(made.get("id", ""))))
    finally:
        if made and "value" in token:
            with contextlib.suppress(AutographError):
                api.delete_diagram(token["value"], str(made["id"]))
        api.close()
    return results


def _scan_references(stack: Stack) -> dict[str, Any]:
    buckets = sorted({bucket for _table, _column, bucket in OBJECT_REFERENCES})
    objects = object_fingerprints(app_client(stack.settings, stack.creds), buckets)
    return dangling_references(stack.settings, stack.creds, objects, keep_keys=True)


def _judge_references(stack: Stack, found: dict[str, Any]) -> str:
    checked = {k: v for k, v in found.items() if isinstance(v, dict) and "dangling" in v}
    if not checked:
        return "not checked: no tables with object references"
    candidates = {k: v["keys"] for k, v in checked.items() if v["dangling"]}
    if candidates:
        dangling = still_dangling(stack.settings, stack.creds,
                                  app_client(stack.settings, stack.creds), candidates)
        if dangling:
            raise AutographError("rows naming missing objects: " + ", ".join(
                f"{n} in {t}" for t, n in dangling.items()))
    total = sum(v["references"] for v in checked.values())
    return f"{total} object references all present"


def collaboration_check(settings: Settings, token: str, diagram_id: str) -> str:
    """Two editors join the diagram's room; an edit from one reaches the other."""
    if not token or not diagram_id:
        raise AutographError("not checked: no session or no diagram")
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    base = settings.service_url("collaboration").replace("http://", "ws://", 1)
    url = f"{base}/api/collab/ws/{diagram_id}?token={token}"
    try:
        with connect(url, open_timeout=WAIT_SECONDS) as first, \
                connect(url, open_timeout=WAIT_SECONDS) as second:
            for socket in (first, second):
                if json.loads(socket.recv(WAIT_SECONDS)).get("type") != "welcome":
                    raise AutographError("no welcome frame from the room")
            first.send(json.dumps({"type": "op", "data": {"dr": "edit"}, "ref": "dr"}))
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                frame = json.loads(second.recv(max(0.1, deadline - time.monotonic())))
                if frame.get("type") == "op" and frame.get("data") == {"dr": "edit"}:
                    return f"an edit reached the other editor (seq {frame.get('seq')})"
    except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
        raise AutographError(f"collaboration room: {type(exc).__name__}: {exc}") from None
    raise AutographError("the edit did not reach the other editor")


def export_check(settings: Settings, token: str, diagram_id: str) -> str:
    """Export the diagram as SVG and download it; its bytes must match the recorded sha256."""
    if not token or not diagram_id:
        raise AutographError("not checked: no session or no diagram")
    base = settings.service_url("export")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30.0) as http:
        made = http.post(f"{base}/api/exports", headers=headers,
                         json={"diagram_id": diagram_id, "format": "svg"})
        if made.status_code != 201:
            raise AutographError(f"export answered {made.status_code}: {made.text[:200]}")
        record = made.json()
        body = http.get(f"{base}/api/exports/{record['id']}", headers=headers)
        http.delete(f"{base}/api/exports/{record['id']}", headers=headers)
    if body.status_code != 200:
        raise AutographError(f"export download answered {body.status_code}")
    if hashlib.sha256(body.content).hexdigest() != record["sha256"]:
        raise AutographError("the exported file does not match its recorded sha256")
    return f"exported the diagram as SVG ({len(body.content)} bytes) and read it back"
