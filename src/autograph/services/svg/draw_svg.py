"""Scene → standalone SVG 1.1 text.

Every label is XML-escaped; colours were validated in the scene; the document has no script,
no event attributes, no ``foreignObject`` and no external references.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from autograph.services.svg.scene import FONT_SIZE, Box, Line, Scene

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


def _n(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _points(points: tuple[tuple[float, float], ...]) -> str:
    return " ".join(f"{_n(x)},{_n(y)}" for x, y in points)


def _shape(box: Box) -> str:
    stroke = f'stroke="{box.stroke}" stroke-width="1.5"'
    paint = f'fill="{box.fill}" {stroke}'
    x, y, w, h = box.x, box.y, box.width, box.height
    if box.shape == "ellipse":
        return (f'<ellipse cx="{_n(x + w / 2)}" cy="{_n(y + h / 2)}" rx="{_n(w / 2)}" '
                f'ry="{_n(h / 2)}" {paint}/>')
    if box.shape == "diamond":
        corners = ((x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2))
        return f'<polygon points="{_points(corners)}" {paint}/>'
    if box.shape == "cylinder":
        ry = min(h / 6, 12.0)
        body = (f"M{_n(x)},{_n(y + ry)} A{_n(w / 2)},{_n(ry)} 0 0 0 {_n(x + w)},{_n(y + ry)} "
                f"V{_n(y + h - ry)} A{_n(w / 2)},{_n(ry)} 0 0 1 {_n(x)},{_n(y + h - ry)} Z")
        rim = f"M{_n(x)},{_n(y + ry)} A{_n(w / 2)},{_n(ry)} 0 0 1 {_n(x + w)},{_n(y + ry)}"
        return f'<path d="{body}" {paint}/><path d="{rim}" fill="none" {stroke}/>'
    radius = ' rx="10" ry="10"' if box.shape == "rounded" else ""
    return f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"{radius} {paint}/>'


def _label(x: float, y: float, text: str, *, halo: bool = False) -> str:
    extra = ' stroke="#ffffff" stroke-width="4" paint-order="stroke"' if halo else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="middle" dominant-baseline="central"'
            f' font-family={quoteattr(FONT)} font-size="{_n(FONT_SIZE)}" fill="#1b2631"'
            f"{extra}>{escape(text)}</text>")


def _line(line: Line) -> str:
    parts = [f'<line x1="{_n(line.x1)}" y1="{_n(line.y1)}" x2="{_n(line.x2)}" '
             f'y2="{_n(line.y2)}" stroke="#566573" stroke-width="1.5"/>']
    parts += [f'<polygon points="{_points(head)}" fill="#566573"/>' for head in line.heads]
    if line.label:
        parts.append(_label((line.x1 + line.x2) / 2, (line.y1 + line.y2) / 2 - 9, line.label,
                            halo=True))
    return "".join(parts)


def render_svg(scene: Scene) -> str:
    """The scene as an SVG document (UTF-8 text, edges under nodes)."""
    width, height = _n(scene.width), _n(scene.height)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}">']
    if scene.title:
        out.append(f"<title>{escape(scene.title)}</title>")
    out.append(f'<rect width="{width}" height="{height}" fill="#ffffff"/>')
    out.append('<g class="edges">' + "".join(_line(line) for line in scene.lines) + "</g>")
    out.append('<g class="nodes">' + "".join(
        f'<g class="node" data-id={quoteattr(box.id)}>{_shape(box)}'
        f"{_label(box.centre[0], box.centre[1], box.label)}</g>" for box in scene.boxes)
        + "</g>")
    out.append("</svg>")
    return "\n".join(out)
