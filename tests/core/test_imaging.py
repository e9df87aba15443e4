"""core.imaging: reduced-scale JPEG decoding keeps at least the asked size."""

from __future__ import annotations

import io

from PIL import Image

from janus_build.core.imaging import describe_error, jpeg_roundtrip, open_image


def _encoded(fmt: str, size: tuple[int, int] = (400, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def test_draft_decodes_jpeg_at_reduced_scale_never_below_the_asked_side():
    full = open_image(_encoded("JPEG"))
    small = open_image(_encoded("JPEG"), draft=64)
    assert full.size == (400, 300)
    assert small.size == (100, 75)  # 1/4 scale: 1/8 would give 37 px, below 64
    assert small.mode == "RGB"


def test_draft_leaves_other_formats_at_full_size():
    assert open_image(_encoded("PNG"), draft=64).size == (400, 300)


def test_describe_error_names_the_kind_without_object_addresses():
    try:
        open_image(b"\xff\xd8\xffnot a jpeg")
    except Exception as exc:
        text = describe_error(exc)
    assert text.startswith("UnidentifiedImageError: ")
    assert "0x" not in text


def test_jpeg_roundtrip_loses_detail_at_low_quality_and_keeps_size_and_mode():
    import numpy as np

    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))
    pixels = np.stack([ramp, ramp.T, 255 - ramp], axis=-1)
    pixels[16:48, 16:48] = (250, 10, 10)  # sharp edges: what low quality blurs
    image = Image.fromarray(pixels.astype(np.uint8))
    low, high = jpeg_roundtrip(image, 10), jpeg_roundtrip(image, 95)
    assert low.size == image.size and low.mode == "RGB"
    original = np.asarray(image, dtype=np.float32)
    error_low = np.abs(np.asarray(low, dtype=np.float32) - original).mean()
    error_high = np.abs(np.asarray(high, dtype=np.float32) - original).mean()
    assert error_low > 2 * error_high
