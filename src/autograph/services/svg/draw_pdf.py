"""Scene → a one-page vector PDF 1.4, written directly (no PDF library).

Labels use the standard Helvetica font in WinAnsi encoding: characters outside it print as
``?`` (the SVG and PNG exports keep them).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from autograph.services.svg.layout import text_width
from autograph.services.svg.scene import FONT_SIZE, Box, Scene

KAPPA = 0.5523  # control-point distance of a quarter-circle Bézier
EDGE = "#566573"
INK = "#1b2631"


def _f(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _rgb(colour: str) -> str:
    hexa = colour.lstrip("#")
    if len(hexa) == 3:
        hexa = "".join(ch * 2 for ch in hexa)
    return " ".join(_f(int(hexa[i:i + 2], 16) / 255) for i in (0, 2, 4))


def _string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


class _Page:
    """Drawing operators in top-left coordinates, flipped to PDF's bottom-left origin."""

    def __init__(self, height: float) -> None:
        self.height = height
        self.ops: list[bytes] = []

    def op(self, text: str) -> None:
        self.ops.append(text.encode("ascii"))

    def p(self, x: float, y: float) -> str:
        return f"{_f(x)} {_f(self.height - y)}"

    def ellipse_path(self, cx: float, cy: float, rx: float, ry: float) -> None:
        ox, oy = rx * KAPPA, ry * KAPPA
        self.op(f"{self.p(cx + rx, cy)} m")
        self.op(f"{self.p(cx + rx, cy - oy)} {self.p(cx + ox, cy - ry)} {self.p(cx, cy - ry)} c")
        self.op(f"{self.p(cx - ox, cy - ry)} {self.p(cx - rx, cy - oy)} {self.p(cx - rx, cy)} c")
        self.op(f"{self.p(cx - rx, cy + oy)} {self.p(cx - ox, cy + ry)} {self.p(cx, cy + ry)} c")
        self.op(f"{self.p(cx + ox, cy + ry)} {self.p(cx + rx, cy + oy)} {self.p(cx + rx, cy)} c")

    def polygon_path(self, points: tuple[tuple[float, float], ...] | list[tuple[float, float]],
                     ) -> None:
        first, *rest = points
        self.op(f"{self.p(*first)} m")
        for point in rest:
            self.op(f"{self.p(*point)} l")
        self.op("h")

    def text(self, cx: float, cy: float, label: str, size: float) -> None:
        x = cx - text_width(label, size) / 2
        y = cy + size * 0.35
        self.ops.append(f"BT /F1 {_f(size)} Tf {self.p(x, y)} Td ".encode("ascii")
                        + _string(label) + b" Tj ET")


def _box(page: _Page, box: Box) -> None:
    page.op(f"{_rgb(box.fill)} rg {_rgb(box.stroke)} RG 1.5 w")
    x, y, w, h = box.x, box.y, box.width, box.height
    if box.shape == "ellipse":
        page.ellipse_path(x + w / 2, y + h / 2, w / 2, h / 2)
    elif box.shape == "diamond":
        page.polygon_path([(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)])
    elif box.shape == "cylinder":
        ry = min(h / 6, 12.0)
        page.ellipse_path(x + w / 2, y + h - ry, w / 2, ry)
        page.op("B")
        page.op(f"{page.p(x, y + h - ry)} {_f(w)} {_f(h - 2 * ry)} re f")
        page.op(f"{page.p(x, y + ry)} m {page.p(x, y + h - ry)} l S")
        page.op(f"{page.p(x + w, y + ry)} m {page.p(x + w, y + h - ry)} l S")
        page.ellipse_path(x + w / 2, y + ry, w / 2, ry)
    else:  # rect and rounded (drawn square-cornered)
        page.op(f"{page.p(x, y + h)} {_f(w)} {_f(h)} re")
    page.op("B")
    page.op(f"{_rgb(INK)} rg")
    page.text(x + w / 2, y + h / 2, box.label, FONT_SIZE)


def render_pdf(scene: Scene, created: datetime | None = None) -> bytes:
    """The scene as a single-page PDF sized to the drawing (1 unit = 1 point)."""
    page = _Page(scene.height)
    page.op(f"1 1 1 rg 0 0 {_f(scene.width)} {_f(scene.height)} re f")
    for line in scene.lines:
        page.op(f"{_rgb(EDGE)} RG {_rgb(EDGE)} rg 1.5 w")
        page.op(f"{page.p(line.x1, line.y1)} m {page.p(line.x2, line.y2)} l S")
        for head in line.heads:
            page.polygon_path(head)
            page.op("f")
        if line.label:
            page.op(f"{_rgb(INK)} rg")
            page.text((line.x1 + line.x2) / 2, (line.y1 + line.y2) / 2 - 9, line.label,
                      FONT_SIZE * 0.85)
    for box in scene.boxes:
        _box(page, box)
    stream = zlib.compress(b"\n".join(page.ops))
    when = (created or datetime.now(UTC)).strftime("D:%Y%m%d%H%M%SZ")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_f(scene.width)} {_f(scene.height)}]"
         " /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>").encode("ascii"),
        f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode("ascii")
        + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _string(scene.title or "AutoGraph diagram")
        + f" /Producer (AutoGraph) /CreationDate ({when}) >>".encode("ascii"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode("ascii") + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += b"".join(f"{offset:010d} 00000 n \n".encode("ascii") for offset in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode("ascii")
    return bytes(out)
