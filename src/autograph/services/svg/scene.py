"""A diagram canvas turned into a scene: positioned shapes and edge lines, ready to draw.

The canvas format (the AI service writes it, the renderer reads it)::

    {"direction": "LR"|"TB",
     "nodes": [{"id", "label", "x"?, "y"?, "width"?, "height"?, "shape"?, "fill"?, "stroke"?}],
     "edges": [{"id"?, "source", "target", "label"?, "arrow"?: "end"|"both"|"none"}]}

Nodes without coordinates are laid out (``layout.place``). Unknown fields are ignored; bad
values (non-numeric coordinates, unknown shapes or colours) fall back to defaults, so any
canvas a user saved still renders. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from autograph.errors import InvalidInput
from autograph.services.svg.layout import place, text_width

SHAPES = ("rect", "rounded", "ellipse", "diamond", "cylinder")
ARROWS = ("end", "both", "none")
MAX_NODES = 2000
MAX_EDGES = 5000
MAX_LABEL = 200
MAX_COORDINATE = 100_000.0
MARGIN = 24.0
FONT_SIZE = 14.0
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
DEFAULT_FILL = "#eef3fb"
DEFAULT_STROKE = "#34495e"


@dataclass(frozen=True)
class Box:
    """A node: its shape in a bounding box and a centred label."""

    id: str
    label: str
    x: float
    y: float
    width: float
    height: float
    shape: str = "rect"
    fill: str = DEFAULT_FILL
    stroke: str = DEFAULT_STROKE

    @property
    def centre(self) -> tuple[float, float]:
        """The centre point."""
        return self.x + self.width / 2, self.y + self.height / 2


@dataclass(frozen=True)
class Line:
    """An edge from border to border, with arrow-head triangles and an optional label."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    heads: tuple[tuple[tuple[float, float], ...], ...] = ()


@dataclass(frozen=True)
class Scene:
    """Everything to draw, in a ``width`` by ``height`` drawing (origin top left)."""

    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    title: str = ""


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    text = str(value) if isinstance(value, str | int | float) else default
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text[:MAX_LABEL]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or abs(value) > MAX_COORDINATE:
        return None
    return float(value)


def _colour(value: Any, default: str) -> str:
    return value if isinstance(value, str) and _COLOUR.match(value) else default


def _nodes(canvas: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = canvas.get("nodes", [])
    if not isinstance(nodes, list):
        raise InvalidInput("canvas.nodes must be a list")
    if len(nodes) > MAX_NODES:
        raise InvalidInput(f"canvas has more than {MAX_NODES} nodes")
    return [node for node in nodes if isinstance(node, dict)]


def _edges(canvas: dict[str, Any]) -> list[dict[str, Any]]:
    edges = canvas.get("edges", [])
    if not isinstance(edges, list):
        raise InvalidInput("canvas.edges must be a list")
    if len(edges) > MAX_EDGES:
        raise InvalidInput(f"canvas has more than {MAX_EDGES} edges")
    return [edge for edge in edges if isinstance(edge, dict)]


def build_scene(canvas: dict[str, Any], title: str = "") -> Scene:
    """Lay out and position every node and edge of ``canvas``.

    Raises InvalidInput when ``nodes``/``edges`` are not lists or exceed the limits.
    """
    raw_nodes = _nodes(canvas)
    raw_edges = _edges(canvas)
    ids: list[str] = []
    specs: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(raw_nodes):
        node_id = _text(node.get("id"), f"node-{index + 1}") or f"node-{index + 1}"
        if node_id in specs:
            continue
        label = _text(node.get("label", node.get("text")), node_id)
        width = _number(node.get("width")) or max(120.0, text_width(label, FONT_SIZE) + 32)
        height = _number(node.get("height")) or 56.0
        specs[node_id] = {
            "label": label, "x": _number(node.get("x")), "y": _number(node.get("y")),
            "width": min(max(width, 16.0), 2000.0), "height": min(max(height, 16.0), 2000.0),
            "shape": node.get("shape") if node.get("shape") in SHAPES else "rect",
            "fill": _colour(node.get("fill"), DEFAULT_FILL),
            "stroke": _colour(node.get("stroke"), DEFAULT_STROKE),
        }
        ids.append(node_id)
    pairs = [(_text(e.get("source")), _text(e.get("target"))) for e in raw_edges]
    pairs = [(s, t) for s, t in pairs if s in specs and t in specs]
    unplaced = [i for i in ids if specs[i]["x"] is None or specs[i]["y"] is None]
    if unplaced:
        direction = "TB" if canvas.get("direction") == "TB" else "LR"
        sizes = {i: (specs[i]["width"], specs[i]["height"]) for i in ids}
        positions = place(ids, pairs, sizes, direction)
        for node_id in unplaced:
            specs[node_id]["x"], specs[node_id]["y"] = positions[node_id]
    boxes = [Box(id=i, **specs[i]) for i in ids]
    by_id = {box.id: box for box in boxes}
    lines = []
    for edge in raw_edges:
        source, target = _text(edge.get("source")), _text(edge.get("target"))
        if source in by_id and target in by_id and source != target:
            arrow = str(edge["arrow"]) if edge.get("arrow") in ARROWS else "end"
            lines.append(connect(by_id[source], by_id[target], _text(edge.get("label")), arrow))
    return _framed(boxes, lines, title)


def _framed(boxes: list[Box], lines: list[Line], title: str) -> Scene:
    """Shift everything so the drawing starts at the margin, and size the drawing."""
    if not boxes:
        return Scene(width=2 * MARGIN + 200, height=2 * MARGIN + 40, title=title)
    left = min(b.x for b in boxes)
    top = min(b.y for b in boxes)
    dx, dy = MARGIN - left, MARGIN - top
    moved = [Box(b.id, b.label, b.x + dx, b.y + dy, b.width, b.height, b.shape, b.fill,
                 b.stroke) for b in boxes]
    shifted = [Line(ln.x1 + dx, ln.y1 + dy, ln.x2 + dx, ln.y2 + dy, ln.label,
                    tuple(tuple((px + dx, py + dy) for px, py in head) for head in ln.heads))
               for ln in lines]
    width = max(b.x + b.width for b in moved) + MARGIN
    height = max(b.y + b.height for b in moved) + MARGIN
    return Scene(width=width, height=height, boxes=moved, lines=shifted, title=title)


def border_point(box: Box, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from the box's centre toward a point leaves the box outline."""
    cx, cy = box.centre
    dx, dy = toward[0] - cx, toward[1] - cy
    if dx == 0 and dy == 0:
        return cx, cy
    half_w, half_h = box.width / 2, box.height / 2
    if box.shape == "ellipse":
        scale = 1 / math.sqrt((dx / half_w) ** 2 + (dy / half_h) ** 2)
    elif box.shape == "diamond":
        scale = 1 / (abs(dx) / half_w + abs(dy) / half_h)
    else:
        scale = min(half_w / abs(dx) if dx else math.inf, half_h / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale


def arrow_head(tip: tuple[float, float], tail: tuple[float, float],
               size: float = 10.0) -> tuple[tuple[float, float], ...]:
    """A filled triangle pointing at ``tip`` along the direction from ``tail``."""
    angle = math.atan2(tip[1] - tail[1], tip[0] - tail[0])
    spread = math.radians(24)
    return (tip,
            (tip[0] - size * math.cos(angle - spread), tip[1] - size * math.sin(angle - spread)),
            (tip[0] - size * math.cos(angle + spread), tip[1] - size * math.sin(angle + spread)))


def connect(source: Box, target: Box, label: str, arrow: str = "end") -> Line:
    """The line between two boxes, clipped to their outlines, with its arrow heads."""
    start = border_point(source, target.centre)
    end = border_point(target, source.centre)
    heads: list[tuple[tuple[float, float], ...]] = []
    if arrow in ("end", "both"):
        heads.append(arrow_head(end, start))
    if arrow == "both":
        heads.append(arrow_head(start, end))
    return Line(start[0], start[1], end[0], end[1], label, tuple(heads))
