"""docs/reproduce-paper.md's walks on miniature published files, with janus commands only
(img2dataset's download simulated by writing what it writes)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from published import fake_img2dataset, laion400m_rows, write_yfcc, write_yfcc_subset, yfcc_quirky_photos
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.shards import iter_samples, read_index
from janus_build.demo.images import class_image


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
    members = {s["__key__"]: s["json"] for s in iter_samples(tmp_path / "bal" / "train")}
    kept = members["laion-3000002"]["source_metadata"]  # LAION's own columns reach the final shards
    assert kept["NSFW"] == "NSFW" and kept["LICENSE"] == "https://creativecommons.org/licenses/by-nc-sa/4.0/"


def test_oi100_walk_by_url(tmp_path):
    from published import oi_image, write_narratives, write_oi_classes, write_oi_images, write_oi_labels

    ids = [f"{n:016x}" for n in range(0xB0, 0xB4)]
    images = write_oi_images(tmp_path / "oidv6-train-images-with-labels-with-rotation.csv",
                             [oi_image(ids[0], "Lion"), oi_image(ids[1], "Pizza"), oi_image(ids[2], "Sky")])  # fmt: skip
    labels = write_oi_labels(tmp_path / "oidv7-train-annotations-human-imagelabels.csv",
                             [(ids[0], "/m/096mb", 1), (ids[1], "/m/0663v", 1), (ids[2], "/m/096mb", 0)])  # fmt: skip
    classes = write_oi_classes(tmp_path / "oidv7-class-descriptions.csv", [("/m/096mb", "Lion")])
    narratives = write_narratives(tmp_path / "open_images_train_v6_captions.jsonl", [(ids[0], "A lion on grass.")])
    meta = tmp_path / "oi100-meta"
    _janus("import", "openimages", "--images-csv", images, "--labels-csv", labels, "--classes-csv", classes,
           "--narratives", narratives, "--labels", "in100", "--out", meta)  # fmt: skip
    _janus("import", "url-list", meta, "--out", tmp_path / "urls.parquet")
    saved = ["janus_key", "label", "license", "owner", "title", "annot_caption", "label_source"]
    fake_img2dataset(tmp_path / "urls.parquet", tmp_path / "i2d", saved, _image)
    _janus("import", "img2dataset", tmp_path / "i2d", "--source", "openimages", "--out", tmp_path / "oi100-images")
    spec = f"name=oi100,images={tmp_path / 'oi100-images'},labels=mapped,kind=openimages,caption=annot_caption|title"
    _janus("balance", spec, "--labels", "in100", "--out", tmp_path / "bal", "--val-fraction", "0")
    rows = _balanced(tmp_path / "bal")
    lion, pizza = rows[f"openimages-{ids[0]}"], rows[f"openimages-{ids[1]}"]
    assert lion["label"] == 291 and lion["caption"] == "A lion on grass." and lion["license"] == "CC BY 2.0"
    assert lion["owner"] == "Jane Doe" and lion["source"] == "openimages" and lion["label_source"] == "mapped"
    assert pizza["label"] == 963 and pizza["caption"] == "Pizza" and len(rows) == 2


def test_in100_walk(tmp_path):
    from published import caption_record, write_imagenet_captions

    from janus_build.labels import load_label_set

    wnid = load_label_set("in100").wnids[291]
    (tmp_path / "train" / wnid).mkdir(parents=True)
    for i in range(3):
        (tmp_path / "train" / wnid / f"{wnid}_{i}.JPEG").write_bytes(class_image(291, i, 16))
    records = [caption_record(wnid, f"{wnid}_{i}.JPEG", f"lion {i}", ["cat"], "") for i in range(3)]
    captions = write_imagenet_captions(tmp_path / "imagenet_captions.zip", records, zipped=True)
    _janus("import", "imagenet-captions", captions, "--imagenet", tmp_path / "train", "--labels", "in100",
           "--out", tmp_path / "in100-images")  # fmt: skip
    spec = f"name=in100,images={tmp_path / 'in100-images'},labels=ground_truth,kind=imagenet"
    _janus("balance", spec, "--labels", "in100", "--out", tmp_path / "bal", "--val-fraction", "0")
    rows = _balanced(tmp_path / "bal")
    assert sorted(r["title"] for r in rows.values()) == ["lion 0", "lion 1", "lion 2"]
    assert {(r["label"], r["source"], r["label_source"]) for r in rows.values()} == {(291, "imagenet", "ground_truth")}
