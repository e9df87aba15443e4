"""Image shards: written atomically, indexed by key with offsets, failures kept as rows."""

from __future__ import annotations

import io
import tarfile

import pytest
from PIL import Image

from janus_build.core.imaging import open_image
from janus_build.core.shards import ImageShardWriter, iter_samples, read_image, read_index, shard_names
from janus_build.demo.images import class_image
from janus_build.errors import InputError


def test_write_then_read_back_by_key_and_in_order(tmp_path):
    with ImageShardWriter(tmp_path, "00000") as writer:
        for i in range(4):
            writer.write(f"flickr-{i}", class_image(i, i), {"class_id": i, "title": f"t{i}"}, extra={"txt": f"cap {i}"})
        writer.write(
            "flickr-9", None, {"class_id": 1, "title": "gone"}, status="download_failed", error_message="HTTP 404"
        )
    assert shard_names(tmp_path) == ["00000"]
    index = read_index(tmp_path).to_pylist()
    assert [r["key"] for r in index] == ["flickr-0", "flickr-1", "flickr-2", "flickr-3", "flickr-9"]
    assert index[4]["status"] == "download_failed" and index[4]["image_offset"] is None
    for row in index[:4]:
        data = read_image(tmp_path, row["shard"], row["image_offset"], row["image_size"])
        assert Image.open(io.BytesIO(data)).size == (64, 64)
    samples = list(iter_samples(tmp_path))
    assert [s["__key__"] for s in samples] == ["flickr-0", "flickr-1", "flickr-2", "flickr-3"]
    assert samples[2]["txt"] == b"cap 2" and samples[2]["json"]["class_id"] == 2
    with tarfile.open(tmp_path / "00000.tar") as tar:  # a plain webdataset tar
        assert tar.getnames()[:3] == ["flickr-0.jpg", "flickr-0.json", "flickr-0.txt"]


def test_failed_shard_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), ImageShardWriter(tmp_path, "00000") as writer:
        writer.write("a", class_image(0, 0), {})
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no finished image shards"):
        read_index(tmp_path)


def test_bad_keys_rejected(tmp_path):
    with ImageShardWriter(tmp_path, "00000") as writer:
        writer.write("a", class_image(0, 0), {})
        with pytest.raises(InputError, match="written twice"):
            writer.write("a", class_image(0, 1), {})
        with pytest.raises(InputError, match="not usable"):
            writer.write("a.b", class_image(0, 1), {})


def test_open_image_converts_modes():
    for mode in ("RGBA", "L", "CMYK", "P"):
        buffer = io.BytesIO()
        Image.new(mode, (8, 8)).save(buffer, format="PNG" if mode != "CMYK" else "JPEG")
        assert open_image(buffer.getvalue()).mode == "RGB"


def test_synthetic_images_are_deterministic_and_styled():
    assert class_image(3, 1) == class_image(3, 1)
    assert class_image(3, 1) != class_image(3, 2)
    sketch = Image.open(io.BytesIO(class_image(3, 1, style="sketch")))
    r, g, b = sketch.getpixel((10, 10))
    assert r == g == b
