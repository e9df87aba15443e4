"""janus import folders: class-folder trees -> image stages (read back, resumed, balanced)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.imaging import sniff_image_ext
from janus_build.core.keys import path_key
from janus_build.core.shards import read_image, read_index
from janus_build.demo.images import class_image
from janus_build.errors import InputError, OutputError
from janus_build.importers import FoldersImportConfig
from janus_build.importers.folders import file_keys, import_folders
from janus_build.labels import load_label_set

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
        assert row["key"] == path_key("imagenet", rel)
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
        ("custom-cat__x", 0, "custom", "unknown"),
        ("custom-snow_x20leopard__x", 1, "custom", "unknown"),
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
    (out / "_stats" / "00001.json").unlink()
    summary = import_folders(_config(root, out))
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("0000*")}
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 2
    changed = sorted(n for n in after if after[n] != before.get(n))
    assert changed == ["00001.parquet", "00001.tar"] and (out / "_stats" / "00001.json").is_file()
    assert (out / "00001.parquet").read_bytes() == (tmp_path / "b" / "00001.parquet").read_bytes()
    # changed options refuse to resume; a changed tree redoes every shard (they no longer line up)
    with pytest.raises(OutputError, match="shard_size"):
        import_folders(_config(root, tmp_path / "b", shard_size=5))
    (root / IN100.wnids[CLASSES[1]] / "new.JPEG").write_bytes(class_image(CLASSES[1], 9, 16))
    summary = import_folders(_config(root, tmp_path / "b"))
    assert summary["shards_written"] == 3 and summary["rows"] == 12
    assert f"{IN100.wnids[CLASSES[1]]}/new.JPEG" in read_index(tmp_path / "b").column("source_id").to_pylist()


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


def test_keys_are_unique_by_construction():
    files = ["a/b_c.jpg", "a_b/c.jpg", "a-b/c.jpg", "x/p.jpg", "x/p.png", "y/l i.jpg", "y/l_x20i.jpg"]
    keys = file_keys("custom", files)
    assert len(set(keys)) == len(files)
    assert keys[:3] == ["custom-a__b_uc", "custom-a_ub__c", "custom-a-b__c"]
    assert keys[3:5] == ["custom-x__p_x2Ejpg", "custom-x__p_x2Epng"]  # a shared stem keeps the extension


def test_two_sources_sharing_relative_paths_all_reach_balance(tmp_path):
    """issue 11: two folder imports with the same relative paths lost images as 'duplicates'."""
    for name, seed in (("zoo", 0), ("park", 50)):
        for class_id in CLASSES[:2]:
            folder = tmp_path / name / IN100.names[class_id]
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"img_{i:03d}.jpg").write_bytes(class_image(class_id, seed + i, 16))
        import_folders(_config(tmp_path / name, tmp_path / f"{name}-out", layout="name", key_prefix=name))
    specs = [f"name={n},images={tmp_path / f'{n}-out'},labels=ground_truth" for n in ("zoo", "park")]
    args = ["balance", *specs, "--labels", "in100", "--out", str(tmp_path / "bal"), "--val-fraction", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(read_index(tmp_path / "bal" / "train")) == 12
