"""Generated images with a learnable class signal, for tests, benchmarks and ``janus demo``.

Each class gets a colour pair and a shape; every sample varies position, scale, rotation and
noise, so a small network can learn the classes and a distribution shift (``style``) can be
applied that keeps the class signal: ``sketch`` (grey outline), ``rendition`` (inverted,
posterised), ``adversarial`` (heavy clutter).
"""

from __future__ import annotations

import io
import random
from typing import Any

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")
STYLES = ("photo", "sketch", "rendition", "adversarial")


def _class_look(class_id: int) -> tuple[tuple[int, int, int], tuple[int, int, int], str]:
    rng = random.Random(class_id * 7919 + 17)
    fg = tuple(rng.randrange(40, 256) for _ in range(3))
    bg = tuple(rng.randrange(0, 120) for _ in range(3))
    return fg, bg, SHAPES[class_id % len(SHAPES)]  # type: ignore[return-value]


def _background(bg: tuple[int, int, int], size: int, rng: random.Random) -> Any:
    """The class's background colour under a smooth texture of the sample's own, so two samples
    of a class are different photographs (distinct perceptual hashes), not re-renders of one."""
    from PIL import Image

    cells = 6
    small = Image.new("RGB", (cells, cells))
    shade = [rng.randint(-110, 110) for _ in range(cells * cells)]
    small.putdata([tuple(max(0, min(255, c + d)) for c in bg) for d in shade])
    return small.resize((size, size), Image.BICUBIC)


def class_image(class_id: int, index: int, size: int = 64, style: str = "photo", fmt: str = "JPEG") -> bytes:
    """Return encoded image bytes for sample ``index`` of ``class_id`` (deterministic)."""
    from PIL import ImageDraw, ImageFilter, ImageOps

    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    fg, bg, shape = _class_look(class_id)
    rng = random.Random(class_id * 1_000_003 + index * 31 + STYLES.index(style))
    image = _background(bg, size, rng)
    draw = ImageDraw.Draw(image)
    for _ in range(6 if style == "adversarial" else 2):  # clutter
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(2, max(3, size // 8))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    scale = rng.uniform(0.3, 0.45) * size
    cx, cy = rng.uniform(scale, size - scale), rng.uniform(scale, size - scale)
    box = [cx - scale, cy - scale, cx + scale, cy + scale]
    if shape == "circle":
        draw.ellipse(box, fill=fg)
    elif shape == "square":
        draw.rectangle(box, fill=fg)
    elif shape == "triangle":
        draw.polygon([(cx, cy - scale), (cx - scale, cy + scale), (cx + scale, cy + scale)], fill=fg)
    elif shape == "cross":
        w = scale / 3
        draw.rectangle([cx - w, cy - scale, cx + w, cy + scale], fill=fg)
        draw.rectangle([cx - scale, cy - w, cx + scale, cy + w], fill=fg)
    elif shape == "ring":
        draw.ellipse(box, outline=fg, width=max(2, int(scale / 3)))
    else:
        draw.rectangle([cx - scale, cy - scale / 4, cx + scale, cy + scale / 4], fill=fg)
    image = image.rotate(rng.uniform(-25, 25), fillcolor=bg)
    if style == "sketch":
        image = ImageOps.grayscale(image).filter(ImageFilter.FIND_EDGES)
        image = ImageOps.invert(image).convert("RGB")
    elif style == "rendition":
        image = ImageOps.posterize(ImageOps.invert(image), 2)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()
