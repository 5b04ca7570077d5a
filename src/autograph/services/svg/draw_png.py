"""Scene → PNG bytes, drawn with Pillow (its bundled FreeType font; no system libraries)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from autograph.errors import InvalidInput
from autograph.services.svg.scene import FONT_SIZE, Box, Scene

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont

MAX_PIXELS = 40_000_000
EDGE = "#566573"
INK = "#1b2631"


def _box(draw: ImageDraw.ImageDraw, box: Box, k: float) -> None:
    x0, y0, x1, y1 = box.x * k, box.y * k, (box.x + box.width) * k, (box.y + box.height) * k
    fill, outline, width = box.fill, box.stroke, max(1, round(1.5 * k))
    if box.shape == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=fill, outline=outline, width=width)
    elif box.shape == "diamond":
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        draw.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=fill, outline=outline,
                     width=width)
    elif box.shape == "cylinder":
        ry = min(box.height / 6, 12.0) * k
        draw.ellipse((x0, y1 - 2 * ry, x1, y1), fill=fill, outline=outline, width=width)
        draw.rectangle((x0, y0 + ry, x1, y1 - ry), fill=fill)
        draw.line((x0, y0 + ry, x0, y1 - ry), fill=outline, width=width)
        draw.line((x1, y0 + ry, x1, y1 - ry), fill=outline, width=width)
        draw.ellipse((x0, y0, x1, y0 + 2 * ry), fill=fill, outline=outline, width=width)
    elif box.shape == "rounded":
        draw.rounded_rectangle((x0, y0, x1, y1), radius=10 * k, fill=fill, outline=outline,
                               width=width)
    else:
        draw.rectangle((x0, y0, x1, y1), fill=fill, outline=outline, width=width)


def _font(size: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when the system has it (wide Unicode coverage), else Pillow's own font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def render_png(scene: Scene, scale: float = 2.0) -> bytes:
    """The scene as a PNG image at ``scale`` pixels per unit (lowered for huge drawings).

    Raises InvalidInput when even scale 1 would exceed the pixel limit.
    """
    from PIL import Image, ImageDraw  # Pillow is imported on the first PNG, not at start

    if scene.width * scene.height > MAX_PIXELS:
        raise InvalidInput("diagram too large to rasterise")
    while scale > 1 and scene.width * scene.height * scale * scale > MAX_PIXELS:
        scale /= 2
    k = max(scale, 1.0)
    image = Image.new("RGB", (round(scene.width * k), round(scene.height * k)), "#ffffff")
    draw = ImageDraw.Draw(image)
    font = _font(FONT_SIZE * k)
    for line in scene.lines:
        draw.line((line.x1 * k, line.y1 * k, line.x2 * k, line.y2 * k), fill=EDGE,
                  width=max(1, round(1.5 * k)))
        for head in line.heads:
            draw.polygon([(x * k, y * k) for x, y in head], fill=EDGE)
        if line.label:
            draw.text(((line.x1 + line.x2) / 2 * k, ((line.y1 + line.y2) / 2 - 9) * k),
                      line.label, fill=INK, font=font, anchor="mm",
                      stroke_width=max(1, round(2 * k)), stroke_fill="#ffffff")
    for box in scene.boxes:
        _box(draw, box, k)
        cx, cy = box.centre
        draw.text((cx * k, cy * k), box.label, fill=INK, font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()
