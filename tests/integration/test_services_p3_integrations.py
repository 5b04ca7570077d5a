"""The integration hub on the real stack: webhook registration and its URL checks, signed
deliveries of diagram events to a local receiver, retries, the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from autograph.stack.lifecycle import Stack


class Receiver:
    """A local HTTP endpoint recording every POST; ``/fail-once/…`` answers 500 the first
    time, ``/gone/…`` always 410, anything else 204."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "body": body,
                                          "headers": dict(self.headers.items())})
                status = 204
                if self.path.startswith("/gone"):
                    status = 410
                elif self.path.startswith("/fail-once") and self.path not in receiver.seen:
                    status = 500
                receiver.seen.add(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


def _user(gateway: httpx.Client) -> dict[str, str]:
    email = f"p3-hooks-{uuid.uuid4().hex[:10]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _register(gateway: httpx.Client, user: dict[str, str], url: str,
              events: list[str] | None = None) -> dict[str, Any]:
    answer = gateway.post("/api/integrations/webhooks", headers=user,
                          json={"url": url, "events": events or []})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _deliveries(gateway: httpx.Client, user: dict[str, str], hook: str,
                settled: int) -> list[dict[str, Any]]:
    """The delivery log once ``settled`` deliveries are no longer pending (30 s deadline)."""
    deadline = time.monotonic() + 30
    while True:
        log = gateway.get(f"/api/integrations/webhooks/{hook}/deliveries",
                          headers=user).json()["deliveries"]
        if sum(d["status"] != "pending" for d in log) >= settled:
            return list(log)
        assert time.monotonic() < deadline, log
        time.sleep(0.3)


def test_diagram_events_are_delivered_signed(gateway: httpx.Client, receiver: Receiver) -> None:
    user = _user(gateway)
    hook = _register(gateway, user, receiver.url + f"/ok/{uuid.uuid4().hex}")
    assert hook["secret"].startswith("whsec_")
    diagram = gateway.post("/api/diagrams", json={"name": "Hooked"}, headers=user).json()
    gateway.put(f"/api/diagrams/{diagram['id']}", json={"name": "Hooked 2"}, headers=user)
    log = _deliveries(gateway, user, hook["id"], 2)
    assert sorted(d["event_type"] for d in log) == ["diagram.created", "diagram.updated"]
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in log)
    path = hook["url"][len(receiver.url):]
    received = receiver.to(path)
    assert len(received) == 2
    for request in received:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        expected = hmac.new(hook["secret"].encode(),
                            headers["x-autograph-timestamp"].encode() + b"." + request["body"],
                            hashlib.sha256).hexdigest()
        assert headers["x-autograph-signature"] == f"sha256={expected}"
        event = json.loads(request["body"])
        assert event["type"] == headers["x-autograph-event"]
        assert event["data"]["diagram_id"] == diagram["id"]
    assert {json.loads(r["body"])["data"]["version"] for r in received} == {1, 2}


def test_a_failing_receiver_is_retried_and_the_log_shows_each_attempt(
        gateway: httpx.Client, receiver: Receiver) -> None:
    user = _user(gateway)
    hook = _register(gateway, user, receiver.url + f"/fail-once/{uuid.uuid4().hex}")
    queued = gateway.post(f"/api/integrations/webhooks/{hook['id']}/test", headers=user)
    assert queued.status_code == 202, queued.text
    (delivery,) = _deliveries(gateway, user, hook["id"], 1)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 204]
    assert delivery["event_type"] == "ping"


def test_a_permanent_refusal_is_not_retried(gateway: httpx.Client, receiver: Receiver) -> None:
    user = _user(gateway)
    hook = _register(gateway, user, receiver.url + f"/gone/{uuid.uuid4().hex}")
    gateway.post("/api/integrations/events", headers=user,
                 json={"type": "build.finished", "data": {"ok": True}})
    (delivery,) = _deliveries(gateway, user, hook["id"], 1)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "failed", 1, 410)


def test_event_filters_choose_which_webhooks_get_an_event(gateway: httpx.Client,
                                                          receiver: Receiver) -> None:
    user = _user(gateway)
    wanted = _register(gateway, user, receiver.url + f"/ok/{uuid.uuid4().hex}",
                       ["report.ready"])
    other = _register(gateway, user, receiver.url + f"/ok/{uuid.uuid4().hex}",
                      ["diagram.created"])
    queued = gateway.post("/api/integrations/events", headers=user,
                          json={"type": "report.ready", "data": {"n": 1}}).json()
    assert len(queued["delivery_ids"]) == 1
    (delivery,) = _deliveries(gateway, user, wanted["id"], 1)
    assert delivery["payload"]["data"] == {"n": 1}
    assert gateway.get(f"/api/integrations/webhooks/{other['id']}/deliveries",
                       headers=user).json()["count"] == 0


@pytest.mark.parametrize(("url", "status"), [
    ("ftp://127.0.0.1/hook", 422), ("javascript:alert(1)", 422),
    ("http://user:pw@127.0.0.1/hook", 422), ("http://10.1.2.3/hook", 400),
    ("http://169.254.169.254/latest/meta-data", 400), ("http://[::1]:1/hook", 201),
])
def test_urls_are_checked_against_scheme_and_destination_policy(
        gateway: httpx.Client, url: str, status: int) -> None:
    user = _user(gateway)
    answer = gateway.post("/api/integrations/webhooks", json={"url": url}, headers=user)
    assert answer.status_code == status, answer.text


def test_webhooks_are_private_to_their_owner(gateway: httpx.Client, receiver: Receiver) -> None:
    owner = _user(gateway)
    hook = _register(gateway, owner, receiver.url + "/ok/private")
    other = _user(gateway)
    for method, path in [("GET", ""), ("GET", "/deliveries"), ("POST", "/test"),
                         ("DELETE", "")]:
        answer = gateway.request(method, f"/api/integrations/webhooks/{hook['id']}{path}",
                                 headers=other)
        assert answer.status_code == 404, (method, path)
    listed = gateway.get("/api/integrations/webhooks", headers=owner).json()
    assert [h["id"] for h in listed["webhooks"]] == [hook["id"]]
    assert "secret" not in listed["webhooks"][0] or listed["webhooks"][0]["secret"] is None
    assert gateway.delete(f"/api/integrations/webhooks/{hook['id']}",
                          headers=owner).status_code == 204
