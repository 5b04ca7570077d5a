"""A 405 names in ``Allow`` exactly the methods served at the path: for every path each service
documents (the gateway's merged OpenAPI covers the proxied APIs through the proxy), one method
it does not document is sent, unauthenticated, on the session's app stack. What is served at a
path is what every documented path matching it serves (``DELETE /api/admin/backup/list`` is
``DELETE /api/admin/backup/{backup_name}``)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from autograph.stack.components import APPLICATION_SERVICES
from autograph.stack.lifecycle import Stack

PROBES = ("PATCH", "PUT", "DELETE", "POST", "GET")
VERBS = {"get", "head", "post", "put", "patch", "delete", "options"}


def _documented(client: httpx.Client) -> list[tuple[str, set[str]]]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    return [(path, {verb.upper() for verb in item if verb in VERBS})
            for path, item in spec["paths"].items()]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "zz-probe-1", path)


def _served(documented: list[tuple[str, set[str]]], path: str) -> set[str]:
    served: set[str] = set()
    for template, methods in documented:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            served |= methods
    return served


@pytest.mark.parametrize("service", [spec.name for spec in APPLICATION_SERVICES])
def test_every_405_names_the_methods_served_at_its_path(app_stack: Stack, service: str
                                                        ) -> None:
    wrong: list[str] = []
    probed = 0
    with httpx.Client(base_url=app_stack.settings.service_url(service), timeout=30,
                      trust_env=False) as client:
        documented = _documented(client)
        for path, _methods in documented:
            served = _served(documented, _concrete(path))
            method = next((m for m in PROBES if m not in served), None)
            if method is None:
                continue
            answer = client.request(method, _concrete(path))
            probed += 1
            allow = {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()}
            if answer.status_code != 405 or allow != served:
                wrong.append(f"{method} {path}: {answer.status_code} Allow={sorted(allow)} "
                             f"documented={sorted(served)}")
    assert probed, f"{service} documents no path"
    assert not wrong, "\n".join(wrong)


def test_a_path_served_by_several_routes_allows_all_of_them(gateway: httpx.Client) -> None:
    answer = gateway.patch("/api/diagrams/00000000-0000-0000-0000-000000000000")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, PUT, DELETE"  # was "GET": the first route only
    assert answer.json() == {"detail": "Method Not Allowed"}
