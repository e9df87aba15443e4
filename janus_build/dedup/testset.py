"""Generated images and the transformed copies a contamination check must find (tests, benchmark).

:func:`textured_image` draws a distinct photo-like image per seed: multi-octave smooth colour
noise (sky, texture, shading) with a few solid shapes on top. Different seeds give images of
the same kind, so negatives are plausible near-misses rather than trivially different.
:data:`TRANSFORMS` are the edits a web copy of an evaluation image typically went through.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np


def textured_image(seed: int, size: int = 256) -> Any:
    """A distinct RGB PIL image for ``seed`` (deterministic)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    canvas = np.zeros((size, size, 3), np.float32)
    for cells, weight in ((4, 1.0), (8, 0.5), (16, 0.25), (32, 0.12)):
        grid = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
        canvas += weight * np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32)
    image = Image.fromarray((canvas * (255.0 / canvas.max())).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 16, size // 4))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            draw.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=colour)
    return image


def jpeg_bytes(image: Any, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _reencode(image: Any, quality: int) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(jpeg_bytes(image, quality))).convert("RGB")


def _crop(image: Any, fraction: float, rng: np.random.Generator) -> Any:
    """Cut ``fraction`` of each side's length in total, split at random between the two edges."""
    width, height = image.size
    cut_w, cut_h = round(width * fraction), round(height * fraction)
    left, top = int(rng.integers(0, cut_w + 1)), int(rng.integers(0, cut_h + 1))
    return image.crop((left, top, width - (cut_w - left), height - (cut_h - top)))


def _gains(image: Any, gains: tuple[float, float, float]) -> Any:
    from PIL import Image

    bands = [band.point(lambda v, g=g: min(255, round(v * g))) for band, g in zip(image.split(), gains)]
    return Image.merge("RGB", bands)


def _enhance(kind: str, factor: float) -> Callable[[Any, np.random.Generator], Any]:
    def apply(image: Any, rng: np.random.Generator) -> Any:
        from PIL import ImageEnhance

        return getattr(ImageEnhance, kind)(image).enhance(factor)

    return apply


def _mirror(image: Any, rng: np.random.Generator) -> Any:
    from PIL import ImageOps

    return ImageOps.mirror(image)


def _combined(image: Any, rng: np.random.Generator) -> Any:
    from PIL import ImageEnhance

    cropped = _crop(image, 0.08, rng).resize((200, 200))
    return _reencode(ImageEnhance.Brightness(cropped).enhance(0.85), 40)


TRANSFORMS: dict[str, Callable[[Any, np.random.Generator], Any]] = {
    "resize_half": lambda im, rng: im.resize((im.width // 2, im.height // 2)),
    "resize_up": lambda im, rng: im.resize((im.width * 3 // 2, im.height * 3 // 2)),
    "jpeg_q20": lambda im, rng: _reencode(im, 20),
    "crop_5pct": lambda im, rng: _crop(im, 0.05, rng),
    "crop_10pct": lambda im, rng: _crop(im, 0.10, rng),
    "brighter_25pct": _enhance("Brightness", 1.25),
    "darker_20pct": _enhance("Brightness", 0.8),
    "contrast_70pct": _enhance("Contrast", 0.7),
    "desaturate_60pct": _enhance("Color", 0.6),
    "colour_gains": lambda im, rng: _gains(im, (1.15, 0.9, 1.05)),
    "mirror": _mirror,
    "crop8_resize_dark_jpeg40": _combined,
}
