"""docs/reproduce-paper.md's walks on miniature published files, with janus commands only
(img2dataset's download simulated by writing what it writes)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from published import fake_img2dataset, laion400m_rows, write_yfcc, write_yfcc_subset, yfcc_quirky_photos
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.shards import read_index
from janus_build.synthetic import class_image


def _janus(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _image(row) -> bytes | None:
    return class_image(int(row.get("label", 0)) % 1000, hash(row["janus_key"]) % 50, 16)


def _balanced(out) -> dict[str, dict]:
    return {r["key"]: r for r in read_index(out / "train").to_pylist()}


def test_yfcc100_walk(tmp_path):
    photos = yfcc_quirky_photos()
    meta = write_yfcc(tmp_path / "yfcc100m_dataset-0.bz2", photos)
    subset = write_yfcc_subset(tmp_path / "yfcc100m_subset_data.tsv.bz2", photos[:10])
    y, m = tmp_path / "yfcc-meta", tmp_path / "yfcc100-match"
    _janus("import", "yfcc", meta, "--subset", subset, "--out", y)
    _janus("match", y, "--out", m, "--labels", "in100", "--text-col", "title", "--text-col", "description",
           "--text-col", "tags")  # fmt: skip
    _janus("import", "url-list", m, "--out", tmp_path / "urls.parquet")
    fake_img2dataset(tmp_path / "urls.parquet", tmp_path / "i2d", ["janus_key", "label"], _image)
    _janus("import", "img2dataset", tmp_path / "i2d", "--out", tmp_path / "yfcc100-images", "--source", "yfcc")
    spec = f"name=yfcc100,images={tmp_path / 'yfcc100-images'},match={m},kind=yfcc"
    _janus("balance", spec, "--labels", "in100", "--out", tmp_path / "bal", "--val-fraction", "0")
    rows = _balanced(tmp_path / "bal")
    lion = rows["yfcc-100"]  # "A lion at the zoo"
    assert lion["label"] == 291 and lion["source"] == "yfcc" and lion["source_id"] == "100"
    assert lion["license"] == "CC BY 2.0" and lion["owner"] == "3@N02" and lion["title"] == "A lion at the zoo"
    assert rows["yfcc-107"]["label"] == 2 and rows["yfcc-107"]["license"] == "All Rights Reserved"
    assert rows["yfcc-101"]["label"] == 130  # flamingo, found in the decoded description
    assert "yfcc-105" not in rows and "yfcc-110" not in rows  # the video; outside the subset
    assert {r["label_source"] for r in rows.values()} == {"sc"}


def test_laion100_walk_keeps_licence(tmp_path):
    parts = tmp_path / "laion400m-meta"
    parts.mkdir()
    pq.write_table(pa.Table.from_pylist(laion400m_rows(10)), parts / "part-00000-5b54c5d5.snappy.parquet")
    meta, m = tmp_path / "laion-meta", tmp_path / "laion100-match"
    _janus("import", "laion", parts, "--out", meta)
    _janus("match", meta, "--out", m, "--labels", "in100")
    _janus("import", "url-list", m, "--out", tmp_path / "urls.parquet")
    fake_img2dataset(tmp_path / "urls.parquet", tmp_path / "i2d", ["janus_key", "LICENSE", "NSFW"], _image)
    _janus("import", "img2dataset", tmp_path / "i2d", "--out", tmp_path / "laion100-images")
    images = {r["key"]: r for r in read_index(tmp_path / "laion100-images").to_pylist()}
    assert images["laion-3000001"]["license"] == "CC BY 4.0" and images["laion-3000001"]["NSFW"] == "UNLIKELY"
    spec = f"name=laion100,images={tmp_path / 'laion100-images'},match={m},kind=laion"
    _janus("balance", spec, "--labels", "in100", "--out", tmp_path / "bal", "--val-fraction", "0")
    rows = _balanced(tmp_path / "bal")
    assert rows["laion-3000001"]["license"] == "CC BY 4.0" and rows["laion-3000001"]["label"] == 2
    assert rows["laion-3000000"]["license"] == "unknown" and rows["laion-3000000"]["label"] == 291
    assert rows["laion-3000002"]["license"] == "CC BY-NC-SA 4.0"  # teapot
