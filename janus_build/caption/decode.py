"""Decoding images safely and preprocessing them for BLIP, in DataLoader worker processes.

Decoding is where bad input shows up: zero-byte and truncated files, CMYK, 16-bit greyscale,
palette and alpha images, and very large images. Each sample either becomes a pixel tensor or
an error (``status``, ``error_message``); nothing here raises for one bad image.

Large images: PIL's decompression-bomb guard refuses images over ~179 M pixels at ``open``,
before we can ask JPEG to decode at a reduced scale. So the guard is lifted for the header
read only; JPEGs are then decoded at the smallest 1/2/4/8 scale still at least twice the model
input (``draft``), and what would still decode to more than ``max_image_pixels`` is refused
(``image_too_large``) without decoding it. The rest is shrunk with ``thumbnail`` (reduce,
then resample) before the processor sees it, which keeps the processor's bicubic resize cheap.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from typing import Any

from janus_build.caption.inputs import Sample


class ImageError(Exception):
    """One image cannot be used; ``status`` is the failure kind written to its row."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def _bomb_guard_lifted() -> Iterator[None]:
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _to_rgb(image: Any) -> Any:
    """RGB, with alpha composited on white and high-bit-depth greyscale scaled (not clipped)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def decode_image(data: bytes, target_size: int, max_image_pixels: int) -> Any:
    """Decode ``data`` to an RGB PIL image no larger than ``2 * target_size`` per side.

    Raises:
        ImageError: ``empty_image``, ``decode_error`` or ``image_too_large``.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("empty_image", "zero-byte image")
    bound = max(1, 2 * target_size)
    try:
        with _bomb_guard_lifted():
            image = Image.open(io.BytesIO(data))
            if image.format == "JPEG":
                image.draft("RGB", (bound, bound))  # decode at 1/2, 1/4 or 1/8 scale when that suffices
            width, height = image.size
            if width * height > max_image_pixels:
                raise ImageError(
                    "image_too_large",
                    f"{width}x{height} pixels ({image.format}) would decode to more than --max-image-pixels {max_image_pixels}",
                )
            image.load()
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image = _to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError("decode_error", f"not a recognised image ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError) as exc:
        raise ImageError("decode_error", f"{type(exc).__name__}: {exc}") from None
    if max(image.size) > bound:
        image.thumbnail((bound, bound), Image.Resampling.BICUBIC, reducing_gap=2.0)
    return image


def read_bytes(sample: Sample, reader: Any = None) -> bytes:
    """The image bytes of ``sample``, read by offset from its tar with the core's
    :class:`~janus_build.core.shards.ImageReader` (``reader``: one kept open across samples)."""
    from janus_build.core.shards import ImageReader
    from janus_build.errors import InputError

    if sample.tar is None or sample.offset is None or sample.size is None:
        raise ImageError("missing_image", "no image member")
    try:
        if reader is None:
            with ImageReader(limit=1) as own:
                return own.read(sample.tar, sample.offset, sample.size)
        return reader.read(sample.tar, sample.offset, sample.size)
    except InputError as exc:  # truncated: names the tar, the offset and the size
        raise ImageError("read_error", str(exc)) from None
    except OSError as exc:
        raise ImageError("read_error", f"{os.path.basename(sample.tar)}: {exc}") from None


def model_input_size(image_processor: Any) -> int:
    """The side the processor resizes to (384 for BLIP), from its ``size`` setting of any form."""
    size = getattr(image_processor, "size", None)
    if isinstance(size, (int, float)):
        return int(size)
    for name in ("height", "shortest_edge", "longest_edge", "width"):
        value = getattr(size, name, None)
        if value is None:
            try:
                value = size[name]  # type: ignore[index]
            except (KeyError, TypeError, IndexError):
                value = None
        if value:
            return int(value)
    return 384


class CaptionDataset:
    """A map-style torch dataset over samples: item ``i`` is ``(i, pixel_values | None, status, error)``.

    Args:
        samples: the samples (only those with an image are ever asked for).
        image_processor: the model's image processor (a picklable ``BlipImageProcessor``).
        max_image_pixels: see :func:`decode_image`.
    """

    def __init__(self, samples: Sequence[Sample], image_processor: Any, max_image_pixels: int) -> None:
        self.samples = samples
        self.image_processor = image_processor
        self.max_image_pixels = max_image_pixels
        self.target_size = model_input_size(image_processor)
        self._reader: Any = None  # opened lazily in each worker process (file handles do not pickle)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None
        return state

    def _read(self, index: int) -> bytes:
        if self._reader is None:
            from janus_build.core.shards import ImageReader

            self._reader = ImageReader(limit=8)
        return read_bytes(self.samples[index], self._reader)

    def _pixels(self, images: list[Any]) -> Any:
        """Resized uint8 ``[N, 3, H, W]``: rescaling and normalising happen on the device
        (:func:`normalize_pixels`), so workers ship a quarter of the bytes through shared memory."""
        import torch

        pixels = self.image_processor(images=images, do_rescale=False, do_normalize=False, return_tensors="pt")[
            "pixel_values"
        ]
        if pixels.dtype != torch.uint8:
            pixels = pixels.round().clamp(0, 255).to(torch.uint8)
        return pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, Any, str, str | None]:
        try:
            image = decode_image(self._read(index), self.target_size, self.max_image_pixels)
            pixels = self._pixels([image])[0]
        except ImageError as exc:
            return index, None, exc.status, str(exc)
        except Exception as exc:
            return index, None, "preprocess_error", f"{type(exc).__name__}: {exc}"
        return index, pixels, "success", None

    def __getitems__(self, indices: list[int]) -> list[tuple[int, Any, str, str | None]]:
        """A whole batch at once: decode each image, then preprocess the good ones in one call."""
        out: list[tuple[int, Any, str, str | None]] = []
        good: list[tuple[int, Any]] = []
        for index in indices:
            try:
                good.append((index, decode_image(self._read(index), self.target_size, self.max_image_pixels)))
            except ImageError as exc:
                out.append((index, None, exc.status, str(exc)))
        if good:
            try:
                pixels = self._pixels([image for _, image in good])
                out.extend((index, pixels[i], "success", None) for i, (index, _) in enumerate(good))
            except Exception:
                out.extend(self[index] for index, _ in good)
        return out


def normalize_pixels(pixels: Any, image_processor: Any, device: str, dtype: Any) -> Any:
    """Finish preprocessing on ``device``: uint8 -> rescaled, normalised ``dtype`` (as the processor would)."""
    import torch

    if pixels.dtype != torch.uint8:  # already preprocessed
        return pixels.to(device, dtype=dtype, non_blocking=True)
    x = pixels.to(device, non_blocking=True).float()
    if getattr(image_processor, "do_rescale", True):
        x = x * float(image_processor.rescale_factor)
    if getattr(image_processor, "do_normalize", True):
        mean = torch.tensor(image_processor.image_mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(image_processor.image_std, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
    return x.to(dtype)


def collate(items: list[tuple[int, Any, str, str | None]]) -> dict[str, Any]:
    """Stack the decoded images of a batch; keep the failures beside them."""
    import torch

    ok = [item for item in items if item[1] is not None]
    return {
        "indices": [item[0] for item in ok],
        "pixel_values": torch.stack([item[1] for item in ok]) if ok else None,
        "failures": [(item[0], item[2], item[3]) for item in items if item[1] is None],
    }
