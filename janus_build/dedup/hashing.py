"""Perceptual hashes of images (``imagehash``'s pHash and dHash) and the views of evaluation images.

A training image is hashed once, as it is. An evaluation image is hashed in several *views*:
the whole image, and with ``crops`` a grid of 95 % and 90 % crops (3 x 3 positions each), and
with ``flips`` the mirror image of each. A training copy cropped by 5-10 % then lies close to
one crop view, which a whole-image hash alone cannot see (a 10 % crop moves pHash by up to
~40 of 64 bits). Hashes are 64-bit integers (imagehash's bit order, packed big-endian).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

# Decode at reduced scale to at least this side: pHash looks at a 32 x 32 grey thumbnail, so a
# 160 px evaluation image keeps a 90 % crop view at 144 px, well above what the hash sees. A
# training image (never cropped) needs only twice the hash's side.
DECODE_SIDE = 160
TRAIN_DECODE_SIDE = 64
DETAIL_SIDE = 32
CROP_GRID = ((0.95, (0.0, 0.5, 1.0)), (0.90, (0.0, 0.5, 1.0)))


def view_names(crops: bool, flips: bool) -> tuple[str, ...]:
    """Names of the indexed views of an evaluation image, in order (``full``, ``crop90-0-50``, ``flip-...``)."""
    names = ["full"]
    if crops:
        for scale, offsets in CROP_GRID:
            names += [f"crop{round(scale * 100)}-{round(x * 100)}-{round(y * 100)}" for x in offsets for y in offsets]
    if flips:
        names += [f"flip-{name}" for name in names]
    return tuple(names)


def decode(data: bytes, side: int = DECODE_SIDE) -> Any:
    """Decode image bytes to an RGB PIL image of at most about ``2 * side`` px per side (at least
    ``side`` where the image is that large; JPEGs are decoded at reduced scale, which is fast)."""
    from janus_build.core.imaging import open_image

    image = open_image(data, draft=side)
    if max(image.size) > 2 * side:
        image.thumbnail((2 * side, 2 * side))
    return image


def _packed(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.reshape(-1)).tobytes(), "big")


def image_hashes(image: Any) -> tuple[int, int]:
    """``(phash, dhash)`` of a PIL image, each a 64-bit unsigned integer."""
    import imagehash

    grey = image.convert("L")
    return _packed(imagehash.phash(grey).hash), _packed(imagehash.dhash(grey).hash)


def signed64(value: int) -> int:
    """The signed 64-bit integer with the bits of an unsigned hash (how parquet columns store it)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def detail(image: Any) -> float:
    """Standard deviation of the 32 x 32 grey thumbnail: near 0 for a uniform image.

    Uniform images have no stable hash (the DCT coefficients are all about equal) and would
    match every other uniform image; they are reported, not compared.
    """
    grey = image.convert("L").resize((DETAIL_SIDE, DETAIL_SIDE))
    return float(np.asarray(grey, dtype=np.float32).std())


def views(image: Any, crops: bool, flips: bool) -> Iterator[tuple[int, Any]]:
    """``(view index, PIL image)`` for every view of :func:`view_names`, in the same order."""
    from PIL import ImageOps

    width, height = image.size
    parts = [image]
    if crops:
        for scale, offsets in CROP_GRID:
            crop_w, crop_h = width * scale, height * scale
            for x in offsets:
                for y in offsets:
                    left, top = (width - crop_w) * x, (height - crop_h) * y
                    parts.append(image.crop((round(left), round(top), round(left + crop_w), round(top + crop_h))))
    yield from enumerate(parts)
    if flips:
        yield from ((len(parts) + i, ImageOps.mirror(part)) for i, part in enumerate(parts))


def view_hashes(image: Any, crops: bool, flips: bool, min_detail: float) -> list[tuple[int, int, int]]:
    """``(view index, phash, dhash)`` of the views of an evaluation image that are not too plain."""
    out = []
    for index, view in views(image.convert("L"), crops, flips):  # both hashes look at grey levels only
        if detail(view) >= min_detail:
            out.append((index, *image_hashes(view)))
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of two uint64 arrays (broadcasting)."""
    diff = np.bitwise_xor(a, b)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(diff).astype(np.int32)
    as_bytes = np.ascontiguousarray(diff).view(np.uint8).reshape(*diff.shape, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.int32)


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)
