"""janus import img2dataset: an img2dataset download re-keyed into an image stage, provenance kept."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.core.shards import read_image, read_index
from janus_build.demo.images import class_image
from janus_build.errors import InputError
from janus_build.importers import Img2datasetImportConfig
from janus_build.importers.img2dataset import import_img2dataset
from janus_build.labels import load_label_set

CLASSES = load_label_set("in100").ids[:3]


def _img2dataset_output(directory: Path, extra: dict | None = None) -> list[dict]:
    """img2dataset's webdataset layout: rows in completion order, keys 000000000.., a failure without members."""
    directory.mkdir()
    shards = {
        "00000": [
            ("000000001", "laion100-2", 1, "success"),
            ("000000000", "laion100-1", 0, "success"),
            ("000000002", "laion100-3", 2, "failed_to_download"),
        ],
        "00001": [("000010000", "laion100-5", 4, "success"), ("000010001", None, 5, "success")],
    }
    expected = []
    for name, rows in shards.items():
        buffer = io.BytesIO()
        meta = []
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for i2d_key, janus_key, n, status in rows:
                row = {
                    "janus_key": janus_key,
                    "caption": f"a photo {n}",
                    "url": f"http://x/{n}.jpg",
                    "key": i2d_key,
                    "status": status,
                    "error_message": None if status == "success" else "HTTP Error 404",
                    "width": 16 if status == "success" else None,
                    **(extra or {}).get(janus_key, {}),
                }
                meta.append(row)
                if status != "success":
                    continue
                data = class_image(CLASSES[n % 3], n, 16, fmt="PNG" if n == 4 else "JPEG")
                for ext, payload in (
                    ("jpg", data),
                    ("txt", row["caption"].encode()),
                    ("json", json.dumps(row).encode()),
                ):
                    info = tarfile.TarInfo(f"{i2d_key}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                expected.append((janus_key, data))
        (directory / f"{name}.tar").write_bytes(buffer.getvalue())
        pq.write_table(pa.Table.from_pylist(meta), directory / f"{name}.parquet")
        (directory / f"{name}_stats.json").write_text(json.dumps({"count": len(rows)}))
    (directory / "00002.tar").write_bytes(b"")  # an unfinished shard: not imported
    return expected


def test_img2dataset_rekeyed(tmp_path):
    expected = _img2dataset_output(tmp_path / "i2d")
    summary = import_img2dataset(Img2datasetImportConfig(input=tmp_path / "i2d", out=tmp_path / "o"))
    index = read_index(tmp_path / "o")
    rows = {r["key"]: r for r in index.to_pylist()}
    assert list(index.column("key").to_pylist()) == [
        "laion100-1",
        "laion100-2",
        "laion100-3",
        "laion100-5",
    ]  # i2d key order
    for key, data in expected:
        if key is None:
            continue
        row = rows[key]
        assert read_image(tmp_path / "o", row["shard"], row["image_offset"], row["image_size"]) == data
        assert row["source"] == "laion" and row["source_id"] == key and row["title"].startswith("a photo")
    assert rows["laion100-5"]["image_ext"] == "png" and rows["laion100-1"]["image_ext"] == "jpg"
    failed = rows["laion100-3"]
    assert failed["status"] == "failed_to_download" and failed["error_message"] == "HTTP Error 404"
    assert failed["url"] == "http://x/2.jpg" and failed["image_offset"] is None
    assert rows["laion100-2"]["i2d_key"] == "000000001" and rows["laion100-2"]["width"] == 16
    assert summary["skipped_without_key"] == 1 and summary["unfinished_input_shards"] == ["00002"]
    with pytest.raises(InputError, match=r"no column 'match_key'.*save_additional_columns"):
        import_img2dataset(Img2datasetImportConfig(input=tmp_path / "i2d", out=tmp_path / "p", key_col="match_key"))


def test_a_licence_in_the_row_beats_the_default(tmp_path):
    """issue 11: LAION's LICENSE='CC BY 4.0' reached the index as license='unknown'."""
    extra = {
        "laion100-1": {"LICENSE": "CC BY 4.0", "NSFW": "UNLIKELY"},
        "laion100-2": {"LICENSE": "?", "NSFW": "UNLIKELY"},
        "laion100-3": {"LICENSE": "https://creativecommons.org/licenses/by-sa/4.0/", "NSFW": "NSFW"},
        "laion100-5": {"LICENSE": None, "NSFW": None},
        None: {"LICENSE": "CC0", "NSFW": None},
    }
    _img2dataset_output(tmp_path / "i2d", extra)
    import_img2dataset(Img2datasetImportConfig(input=tmp_path / "i2d", out=tmp_path / "o", license="mine"))
    rows = {r["key"]: r for r in read_index(tmp_path / "o").to_pylist()}
    assert {k: r["license"] for k, r in rows.items()} == {
        "laion100-1": "CC BY 4.0",
        "laion100-2": "mine",  # '?' is LAION's "unknown": the default applies
        "laion100-3": "CC BY-SA 4.0",
        "laion100-5": "mine",
    }
    assert rows["laion100-1"]["LICENSE"] == "CC BY 4.0" and rows["laion100-3"]["NSFW"] == "NSFW"
