"""The AI service (text to diagram) and the SVG renderer, through the gateway on the real
stack: deterministic generation, saving through the diagram service, escaping, formats."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from autograph.stack.lifecycle import Stack

PROMPT = """# checkout
User -> API Gateway -> Orders: HTTPS
API Gateway: Auth, Catalog and Payments
Orders writes to Database
"""


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=60,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def user(gateway: httpx.Client) -> dict[str, str]:
    email = f"p3-ai-{uuid.uuid4().hex[:10]}@example.com"
    gateway.post("/api/auth/register", json={"email": email, "password": "Sturdy-Pass-42"})
    token = gateway.post("/api/auth/login", json={"email": email, "password": "Sturdy-Pass-42"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _labels(canvas: dict) -> dict[str, str]:
    return {node["id"]: node["label"] for node in canvas["nodes"]}


def test_generate_parses_chains_fanouts_and_sentences(gateway: httpx.Client,
                                                      user: dict[str, str]) -> None:
    answer = gateway.post("/api/ai/generate", json={"prompt": PROMPT}, headers=user)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    labels = _labels(body["canvas"])
    edges = {(labels[e["source"]], labels[e["target"]], e["label"])
             for e in body["canvas"]["edges"]}
    assert edges == {("User", "API Gateway", "HTTPS"), ("API Gateway", "Orders", "HTTPS"),
                     ("API Gateway", "Auth", ""), ("API Gateway", "Catalog", ""),
                     ("API Gateway", "Payments", ""), ("Orders", "Database", "writes to")}
    assert (body["node_count"], body["edge_count"]) == (7, 6)
    shapes = {n["label"]: n["shape"] for n in body["canvas"]["nodes"]}
    assert (shapes["Database"], shapes["User"], shapes["Orders"]) == (
        "cylinder", "ellipse", "rect")
    assert body["diagram"] is None


def test_generate_is_deterministic_and_lays_out_left_to_right(
        gateway: httpx.Client, user: dict[str, str]) -> None:
    first = gateway.post("/api/ai/generate", json={"prompt": PROMPT}, headers=user).json()
    second = gateway.post("/api/ai/generate", json={"prompt": PROMPT}, headers=user).json()
    assert first == second
    x = {n["label"]: n["x"] for n in first["canvas"]["nodes"]}
    assert x["User"] < x["API Gateway"] < x["Orders"] < x["Database"]


@pytest.mark.parametrize("prompt", ["# only a comment", "   \n  ", "-> ->"])
def test_generate_refuses_a_prompt_without_components(gateway: httpx.Client,
                                                      user: dict[str, str], prompt: str) -> None:
    answer = gateway.post("/api/ai/generate", json={"prompt": prompt}, headers=user)
    assert answer.status_code == 400, answer.text
    assert "detail" in answer.json()


def test_generate_with_save_creates_a_diagram_of_the_caller(gateway: httpx.Client,
                                                           user: dict[str, str]) -> None:
    answer = gateway.post("/api/ai/generate", headers=user, json={
        "prompt": "Browser -> Web -> API", "save": True, "name": "Generated web"})
    assert answer.status_code == 200, answer.text
    diagram = answer.json()["diagram"]
    stored = gateway.get(f"/api/diagrams/{diagram['id']}", headers=user).json()
    assert stored["name"] == "Generated web"
    assert stored["canvas"] == answer.json()["canvas"]


def test_svg_escapes_every_label_and_has_no_script(gateway: httpx.Client,
                                                   user: dict[str, str]) -> None:
    canvas = {"nodes": [{"id": "a", "label": "<script>alert(1)</script>"},
                        {"id": "b", "label": "Tom & \"Jerry\"", "fill": "red\" onload=\"x"}],
              "edges": [{"source": "a", "target": "b", "label": "</text><script>"}]}
    answer = gateway.post("/api/render/svg", json={"canvas": canvas, "title": "<t>"},
                          headers=user)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(answer.content)  # well-formed XML
    tags = {element.tag.split("}")[-1] for element in root.iter()}
    assert "script" not in tags and "foreignObject" not in tags
    texts = {element.text for element in root.iter() if element.tag.endswith("text")}
    assert {"<script>alert(1)</script>", "Tom & \"Jerry\"", "</text><script>"} <= texts
    assert not any(name.startswith("on") for element in root.iter() for name in element.attrib)


@pytest.mark.parametrize(("fmt", "magic", "media"), [
    ("png", b"\x89PNG\r\n\x1a\n", "image/png"), ("pdf", b"%PDF-1.4", "application/pdf")])
def test_png_and_pdf_renderings(gateway: httpx.Client, user: dict[str, str], fmt: str,
                                magic: bytes, media: str) -> None:
    canvas = gateway.post("/api/ai/generate", json={"prompt": PROMPT}, headers=user).json()
    answer = gateway.post(f"/api/render/{fmt}", json={"canvas": canvas["canvas"]},
                          headers=user)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == media
    assert answer.content.startswith(magic)
    if fmt == "pdf":
        assert answer.content.rstrip().endswith(b"%%EOF")


def test_render_refuses_a_canvas_whose_nodes_are_not_a_list(gateway: httpx.Client,
                                                            user: dict[str, str]) -> None:
    answer = gateway.post("/api/render/svg", json={"canvas": {"nodes": "many"}}, headers=user)
    assert answer.status_code == 400
    assert answer.json()["detail"] == "canvas.nodes must be a list"
