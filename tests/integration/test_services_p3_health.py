"""Priority-3 services on the real stack: each one's /health, its place in the stack, the
gateway's routes to it, and 401 without a session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from autograph.stack.components import APPLICATION_SERVICES
from autograph.stack.lifecycle import Stack

P3 = ["svg", "ai", "collaboration", "export", "git", "integrations", "frontend"]


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


@pytest.mark.parametrize("service", P3)
def test_each_priority_3_service_reports_healthy(app_stack: Stack, service: str) -> None:
    answer = httpx.get(f"{app_stack.settings.service_url(service)}/health", timeout=30,
                       trust_env=False)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "healthy"
    assert all(detail for detail in answer.json()["checks"].values())


def test_priority_3_services_are_declared_after_priority_2() -> None:
    priorities = {spec.name: spec.priority for spec in APPLICATION_SERVICES}
    assert {name: priorities.get(name) for name in P3} == dict.fromkeys(P3, 3)
    assert all(priorities[name] == 2 for name in ("gateway", "auth", "diagram"))


def test_health_all_lists_every_priority_3_service_as_healthy(gateway: httpx.Client) -> None:
    components = gateway.get("/health/all").json()["components"]
    assert {name: (components[name]["priority"], components[name]["status"])
            for name in P3} == dict.fromkeys(P3, (3, "healthy"))


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/ai/generate"), ("POST", "/api/render/svg"), ("GET", "/api/exports"),
    ("GET", "/api/git/log?diagram_id=00000000-0000-0000-0000-000000000000"),
    ("GET", "/api/integrations/webhooks"),
    ("GET", "/api/collab/rooms/00000000-0000-0000-0000-000000000000/members"),
])
def test_gateway_routes_each_prefix_and_the_service_demands_a_session(
        gateway: httpx.Client, method: str, path: str) -> None:
    answer = gateway.request(method, path, json={} if method == "POST" else None)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
