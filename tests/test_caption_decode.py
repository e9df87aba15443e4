"""Bad images become a status or a correct RGB conversion (janus_build.caption.decode)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from janus_build.caption.decode import CaptionDataset, ImageError, collate, decode_image
from janus_build.caption.inputs import Sample
from janus_build.demo.images import class_image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header is rewritten to claim ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def failure(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, kwargs.pop("target", 32), kwargs.pop("max_pixels", 250_000_000))
    return info.value.status


def test_unreadable_images_get_a_status():
    jpeg = class_image(3, 0, 64)
    assert failure(b"") == "empty_image"
    assert failure(b"definitely not an image") == "decode_error"
    assert failure(jpeg[: len(jpeg) // 2]) == "decode_error"  # truncated
    assert failure(png_claiming_size(30_000, 30_000)) == "image_too_large"  # refused before decoding


def test_modes_are_converted_to_rgb():
    cmyk = decode_image(encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"), 32, 10**9)
    assert cmyk.mode == "RGB" and cmyk.size == (40, 30)
    red = cmyk.getpixel((20, 15))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # C=0 M=Y=255 is red

    grey = decode_image(encode(Image.new("L", (20, 20), 90), "PNG"), 32, 10**9)
    assert grey.mode == "RGB" and grey.getpixel((5, 5)) == (90, 90, 90)

    # 16-bit greyscale is scaled to 8 bits, not clipped to white.
    ramp = np.tile(np.linspace(0, 60_000, 32, dtype=np.uint16), (8, 1))
    sixteen = decode_image(encode(Image.fromarray(ramp), "PNG"), 32, 10**9)
    values = np.asarray(sixteen)[..., 0]
    assert sixteen.mode == "RGB" and values.min() == 0 and values.max() == 255 and len(np.unique(values)) > 16

    # Transparent pixels are composited on white, opaque ones kept.
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    out = decode_image(encode(rgba, "PNG"), 32, 10**9)
    assert out.getpixel((5, 5)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)

    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 1
    assert decode_image(encode(palette, "PNG", transparency=1), 32, 10**9).getpixel((3, 3)) == (255, 255, 255)


def test_huge_images_are_downscaled_or_refused():
    wide = Image.new("L", (20_000, 1_000), 128)
    jpeg, png = encode(wide, "JPEG", quality=50), encode(wide, "PNG")
    # A 20,000-pixel JPEG decodes at reduced scale; the result is at most twice the model input.
    small = decode_image(jpeg, 32, 1_000_000)
    assert small.mode == "RGB" and max(small.size) <= 64 and small.size[0] > small.size[1]
    # A PNG cannot be decoded at reduced scale: over the pixel limit it is refused, not decoded.
    assert failure(png, max_pixels=1_000_000) == "image_too_large"
    assert max(decode_image(png, 32, 100_000_000).size) <= 64


def test_dataset_reads_by_offset_and_reports_each_failure(tmp_path):
    from transformers import BlipImageProcessor

    good = class_image(1, 0, 48)
    blob = tmp_path / "blob.tar"
    blob.write_bytes(good + b"garbage!" + b"")
    samples = [
        Sample("a", str(blob), 0, len(good)),
        Sample("b", str(blob), len(good), 8),
        Sample("c", str(blob), len(good) + 8, 0),
        Sample("d", str(blob), 0, len(good) + 1000),  # the index claims more bytes than the tar has
    ]
    dataset = CaptionDataset(samples, BlipImageProcessor(size={"height": 32, "width": 32}), 10**9)
    batch = collate(dataset.__getitems__([0, 1, 2, 3]))
    assert batch["indices"] == [0] and tuple(batch["pixel_values"].shape) == (1, 3, 32, 32)
    assert {i: s for i, s, _ in batch["failures"]} == {1: "decode_error", 2: "empty_image", 3: "read_error"}
    assert all(message for _, _, message in batch["failures"])


def test_workers_ship_uint8_and_normalising_matches_the_processor():
    import torch
    from transformers import BlipImageProcessor

    from janus_build.caption.decode import normalize_pixels

    processor = BlipImageProcessor(size={"height": 32, "width": 32})
    image = decode_image(class_image(5, 1, 48), 32, 10**9)
    shipped = CaptionDataset([], processor, 10**9)._pixels([image])
    assert shipped.dtype == torch.uint8 and tuple(shipped.shape) == (1, 3, 32, 32)
    expected = processor(images=[image], return_tensors="pt")["pixel_values"]
    assert torch.allclose(normalize_pixels(shipped, processor, "cpu", torch.float32), expected, atol=1e-5)
    assert normalize_pixels(expected, processor, "cpu", torch.bfloat16).dtype == torch.bfloat16
