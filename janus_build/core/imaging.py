"""Image bytes: format sniffing, header checks, decoding to RGB and the one JPEG re-encoder."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
JPEG_QUALITY = 95


def sniff_image_ext(data: bytes) -> str | None:
    """The image format of ``data`` from its magic bytes: ``jpg``, ``png``, ``webp`` or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


@dataclass(frozen=True)
class ImageCheck:
    """The outcome of :func:`check_image`: ``status`` is ``success`` or a failure kind."""

    ext: str | None
    status: str
    error: str | None
    width: int | None = None
    height: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"


def _clean(message: str) -> str:
    return re.sub(r" ?<[^<>]* at 0x[0-9a-fA-F]+>", "", message)  # no object addresses: rows stay deterministic


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of a decoding exception, without object addresses (rows stay deterministic)."""
    return f"{type(exc).__name__}: {_clean(str(exc))}"


def check_image(data: bytes | None) -> ImageCheck:
    """Check ``data`` is a JPEG/PNG/WebP whose header PIL parses (no full decode)."""
    if not data:
        return ImageCheck(None, "empty_file", "the image is empty (0 bytes)")
    ext = sniff_image_ext(data)
    if ext is None:
        return ImageCheck(None, "unknown_format", f"not a JPEG, PNG or WebP (first bytes {data[:8].hex()})")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception as exc:  # PIL raises many kinds on bad headers
        return ImageCheck(None, "decode_error", f"{type(exc).__name__}: {_clean(str(exc))}")
    return ImageCheck(ext, "success", None, width, height)


def open_image(data: bytes, draft: int | None = None) -> Any:
    """Decode image bytes with PIL into RGB (CMYK, greyscale, 16-bit, palette and alpha converted).

    Args:
        data: the encoded image.
        draft: decode a JPEG at a reduced scale (libjpeg's 1/2, 1/4, 1/8 DCT scaling) whose
            sides stay at least ``draft`` pixels; much faster when only a thumbnail is needed.
            Other formats decode at full size.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if draft is not None and image.format == "JPEG":
        image.draft("RGB", (draft, draft))
    image.load()
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.split()[-1])
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def to_jpeg(data: bytes, ext: str | None = None, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an image: JPEG input is returned as it is, anything else re-encoded."""
    if (ext or sniff_image_ext(data) or "") in ("jpg", "jpeg"):
        return data
    buffer = io.BytesIO()
    open_image(data).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_roundtrip(image: Any, quality: int) -> Any:
    """A PIL image encoded as JPEG at ``quality`` and decoded again (JPEG-artefact augmentation)."""
    from PIL import Image

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def decodable(data: bytes) -> str | None:
    """None when ``data`` decodes fully as an image, else the reason (for validating shards)."""
    check = check_image(data)
    if not check.ok:
        return check.error
    try:
        open_image(data)
    except Exception as exc:  # truncated data fails only on load
        return f"{type(exc).__name__}: {_clean(str(exc))}"
    return None
