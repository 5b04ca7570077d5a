"""The verification a recovery ends with (the plan's "Verify System"): every component's health,
a login and ``/api/users/me``, a diagram created and read back (then removed), and every stored
object reference pointing at an object that exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from autograph.clock import Clock, isoformat
from autograph.config import Settings
from autograph.dr.drill_integrity import dangling_references, object_fingerprints
from autograph.dr.workload import ApiClient
from autograph.errors import AutographError
from autograph.s3client import app_client
from autograph.secrets import read_or_create
from autograph.stack.lifecycle import Stack

Check = dict[str, Any]


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


def verify(stack: Stack, clock: Clock) -> dict[str, Check]:
    """Run the checks; each is ``{"ok", "detail", "at"}``. Never raises."""
    settings = stack.settings
    results: dict[str, Check] = {}

    def health() -> str:
        bad = []
        for component in stack.components:
            answer = component.health()
            if not answer.healthy:
                bad.append(f"{component.name} ({answer.detail[:80]})")
        if bad:
            raise AutographError("unhealthy: " + ", ".join(bad))
        return f"{len(stack.components)} components healthy"

    results["health"] = _timed(clock, health)
    has_services = any(c.kind == "service" for c in stack.components)
    if not has_services:
        results["authentication"] = {"ok": True, "detail": "no application services in this "
                                     "stack", "at": isoformat(clock()), "skipped": True}
        results["diagrams"] = dict(results["authentication"])
    else:
        api = ApiClient(settings, via_gateway=uses_gateway(stack))
        token: dict[str, str] = {}
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
                made = api.create_diagram(token["value"], "DR Test Diagram", canvas)
                read = api.get_diagram(token["value"], str(made["id"]))
                with contextlib.suppress(AutographError):
                    api.delete_diagram(token["value"], str(made["id"]))
                if read.get("canvas") != canvas:
                    raise AutographError("the diagram read back differs from the one created")
                return f"created and read diagram {made['id']} (then removed it)"

            results["diagrams"] = _timed(clock, diagram_round_trip)
        finally:
            api.close()

    def references() -> str:
        objects = object_fingerprints(app_client(settings, stack.creds), settings.app_buckets)
        found = dangling_references(settings, stack.creds, objects)
        checked = {k: v for k, v in found.items() if isinstance(v, dict) and "dangling" in v}
        if not checked:
            return "not checked: no tables with object references"
        dangling = {k: v["dangling"] for k, v in checked.items() if v["dangling"]}
        if dangling:
            raise AutographError("rows naming missing objects: " + ", ".join(
                f"{n} in {t}" for t, n in dangling.items()))
        total = sum(v["references"] for v in checked.values())
        return f"{total} object references all present"

    results["references"] = _timed(clock, references)
    return results
