"""janus import: class folders and img2dataset downloads -> image stages (read back, resumed, balanced)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.shards import read_image, read_index
from janus_build.errors import InputError, OutputError
from janus_build.imports import (
    FoldersImportConfig,
    Img2datasetImportConfig,
    UrlListConfig,
    import_folders,
    import_img2dataset,
    sniff_image_ext,
    write_url_list,
)
from janus_build.labels import load_label_set
from janus_build.synthetic import class_image

IN100 = load_label_set("in100")
CLASSES = IN100.ids[:3]  # ImageNet-1k ids of three IN100 classes
TENCH = "n01440764"  # an ImageNet class that is not in IN100


def _tree(root: Path, folder_of, per_class: int = 3) -> dict[str, bytes]:
    """Write per_class images per class (the last one a PNG named .JPEG); return {relative path: bytes}."""
    files = {}
    for class_id in CLASSES:
        folder = root / folder_of(class_id)
        folder.mkdir(parents=True)
        for i in range(per_class):
            data = class_image(class_id, i, 16, fmt="PNG" if i == per_class - 1 else "JPEG")
            (folder / f"{folder.name.replace(' ', '_')}_{i}.JPEG").write_bytes(data)
            files[f"{folder.name}/{folder.name.replace(' ', '_')}_{i}.JPEG"] = data
    return files


@pytest.fixture()
def imagenet(tmp_path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "train"
    files = _tree(root, lambda c: IN100.wnids[c])
    (root / TENCH).mkdir()
    (root / TENCH / f"{TENCH}_1.JPEG").write_bytes(class_image(0, 1, 16))
    first = root / IN100.wnids[CLASSES[0]]
    (first / "corrupt.JPEG").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (first / "empty.jpg").write_bytes(b"")
    (first / "notes.txt").write_text("not an image")
    return root, files


def _config(root, out, **kw) -> FoldersImportConfig:
    return FoldersImportConfig(
        root=root, out=out, **{"layout": "wnid", "labels": "in100", "shard_size": 4, "workers": 2, **kw}
    )


def test_wnid_layout_labels_bytes_and_failures(imagenet, tmp_path):
    root, files = imagenet
    summary = import_folders(_config(root, tmp_path / "out"))
    index = read_index(tmp_path / "out")
    rows = {r["source_id"]: r for r in index.to_pylist()}
    assert set(rows) == set(files) | {f"{IN100.wnids[CLASSES[0]]}/corrupt.JPEG", f"{IN100.wnids[CLASSES[0]]}/empty.jpg"}
    assert index.schema.field("label").type == pa.int32()
    for rel, data in files.items():
        row = rows[rel]
        assert row["label"] == CLASSES[[IN100.wnids[c] for c in CLASSES].index(rel.split("/")[0])]
        assert row["label_source"] == "ground_truth" and row["source"] == "imagenet" and row["url"] is None
        assert row["license"] == "ImageNet terms of access" and row["title"] == ""
        assert row["key"] == "imagenet-" + rel.rsplit(".", 1)[0].replace("/", "-")
        assert (
            read_image(tmp_path / "out", row["shard"], row["image_offset"], row["image_size"]) == data
        )  # no re-encode
        assert row["image_ext"] == sniff_image_ext(data)  # the PNG named .JPEG is stored as png
    assert {r["image_ext"] for r in rows.values() if r["status"] == "success"} == {"jpg", "png"}
    corrupt, empty = rows[f"{IN100.wnids[CLASSES[0]]}/corrupt.JPEG"], rows[f"{IN100.wnids[CLASSES[0]]}/empty.jpg"]
    assert corrupt["status"] == "decode_error" and corrupt["image_offset"] is None and corrupt["error_message"]
    assert empty["status"] == "empty_file" and empty["image_ext"] is None
    assert summary["successes"] == len(files) and summary["failures"] == {"decode_error": 1, "empty_file": 1}
    assert summary["skipped_folders"] == 1 and summary["skipped_folder_examples"] == [TENCH]
    assert summary["skipped_other_files"] == 1 and summary["classes_imported"] == 3
    assert len(summary["classes_without_images"]) == 97
    assert summary["shards"] == 3  # 11 rows at 4 per shard
    # in1k keeps the tench folder
    import_folders(_config(root, tmp_path / "all", labels="in1k"))
    assert 0 in read_index(tmp_path / "all").column("label").to_pylist()


def test_index_and_name_layouts(tmp_path):
    v2 = tmp_path / "v2"
    files = _tree(v2, str)
    (v2 / "0").mkdir()  # tench (class 0) is not in IN100: skipped
    (v2 / "0" / "a.jpeg").write_bytes(class_image(0, 0, 16))
    summary = import_folders(_config(v2, tmp_path / "v2out", layout="index", key_prefix="imagenetv2"))
    rows = read_index(tmp_path / "v2out").to_pylist()
    assert sorted((r["label"], r["source_id"]) for r in rows) == sorted((int(p.split("/")[0]), p) for p in files)
    assert all(r["key"].startswith("imagenetv2-") for r in rows) and summary["skipped_folders"] == 1

    labels = tmp_path / "animals.tsv"
    labels.write_text("class_id\tname\n0\tcat\n1\tsnow leopard\n")
    named = tmp_path / "named"
    for class_id, name in ((0, "cat"), (1, "snow leopard")):
        (named / name).mkdir(parents=True)
        (named / name / "x.png").write_bytes(class_image(class_id, 0, 16, fmt="PNG"))
    import_folders(_config(named, tmp_path / "namedout", layout="name", labels=str(labels)))
    rows = read_index(tmp_path / "namedout").to_pylist()
    assert {(r["key"], r["label"], r["source"], r["license"]) for r in rows} == {
        ("custom-cat-x", 0, "custom", "unknown"),
        ("custom-snow_leopard-x", 1, "custom", "unknown"),
    }
    (named / "dog").mkdir()
    with pytest.raises(InputError, match=r"not a class name of label set 'animals'.*'dog'"):
        import_folders(_config(named, tmp_path / "namedout2", layout="name", labels=str(labels)))


def test_deterministic_and_resume_rewrites_only_the_missing_shard(imagenet, tmp_path):
    root, _ = imagenet
    import_folders(_config(root, tmp_path / "a"))
    import_folders(_config(root, tmp_path / "b"))
    for name in ("00000", "00001", "00002"):
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()
        assert (tmp_path / "a" / f"{name}.tar").read_bytes() == (tmp_path / "b" / f"{name}.tar").read_bytes()
    out = tmp_path / "a"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("0000*")}
    (out / "00001_stats.json").unlink()
    summary = import_folders(_config(root, out))
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("0000*")}
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 2
    changed = sorted(n for n in after if after[n] != before.get(n))
    assert changed == ["00001.parquet", "00001.tar", "00001_stats.json"]
    assert (out / "00001.parquet").read_bytes() == (tmp_path / "b" / "00001.parquet").read_bytes()
    # a changed tree or changed options refuse to resume
    with pytest.raises(OutputError, match="shard_size"):
        import_folders(_config(root, tmp_path / "b", shard_size=5))
    (root / IN100.wnids[CLASSES[1]] / "new.JPEG").write_bytes(class_image(CLASSES[1], 9, 16))
    with pytest.raises(OutputError, match="another file list"):
        import_folders(_config(root, tmp_path / "b", shard_size=5))


def test_bad_inputs(imagenet, tmp_path):
    root, _ = imagenet
    with pytest.raises(InputError, match="no such directory"):
        import_folders(_config(tmp_path / "missing", tmp_path / "o"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty and holds no janus manifest"):
        import_folders(_config(root, other))
    assert (other / "keep.txt").read_text() == "mine"
    (root / "stuff").mkdir()
    with pytest.raises(InputError, match="not a WordNet id.*'stuff'"):
        import_folders(_config(root, tmp_path / "o"))


def test_cli_folders(imagenet, tmp_path):
    root, files = imagenet
    result = CliRunner().invoke(
        app,
        [
            "import",
            "folders",
            str(root),
            "--out",
            str(tmp_path / "o"),
            "--layout",
            "wnid",
            "--labels",
            "in100",
            "--shard-size",
            "100",
            "--license",
            "mine",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(files)} image(s) in 3 class(es)" in result.output
    assert set(read_index(tmp_path / "o").column("license").to_pylist()) == {"mine"}


# --- img2dataset ---------------------------------------------------------------------------
def _img2dataset_output(directory: Path) -> list[dict]:
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


def test_url_list_from_match_output(tmp_path):
    match = tmp_path / "match"
    match.mkdir()
    (match / "manifest.json").write_text(json.dumps({"stage": "match", "config": {"strategy": "sc"}}))
    pq.write_table(
        pa.table(
            {
                "URL": ["http://a", "http://b", None],
                "TEXT": ["a lion", "nothing", "a tench"],
                "key": ["s-0", "s-1", "s-2"],
                "label": pa.array([291, -1, 0], pa.int32()),
            }
        ),
        match / "00000.parquet",
    )
    (match / "00000_stats.json").write_text("{}")
    result = write_url_list(UrlListConfig(match_dir=match, out=tmp_path / "urls.parquet"))
    table = pq.read_table(tmp_path / "urls.parquet")
    assert table.column_names == ["janus_key", "URL", "TEXT"] and table.to_pylist() == [
        {"janus_key": "s-0", "URL": "http://a", "TEXT": "a lion"}
    ]
    assert result["rows"] == 3 and result["written"] == 1
    with pytest.raises(InputError, match="not a janus match output"):
        write_url_list(UrlListConfig(match_dir=tmp_path, out=tmp_path / "u.parquet"))


def test_balance_reads_imported_folders(imagenet, tmp_path):
    root, files = imagenet
    import_folders(_config(root, tmp_path / "in100"))
    result = CliRunner().invoke(
        app,
        [
            "balance",
            f"name=in100,images={tmp_path / 'in100'},labels=ground_truth,kind=imagenet",
            "--labels",
            "in100",
            "--out",
            str(tmp_path / "bal"),
            "--val-fraction",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    balanced = read_index(tmp_path / "bal" / "train").to_pylist()
    imported = {r["key"]: r["label"] for r in read_index(tmp_path / "in100").to_pylist() if r["status"] == "success"}
    assert {r["key"]: r["label"] for r in balanced} == imported and len(imported) == len(files)
    assert {r["label_source"] for r in balanced} == {"ground_truth"}
