"""janus dedup: planted near-copies of evaluation images are all found, distinct images never;
bad inputs are one-line errors or status rows; re-runs resume and change nothing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from janus_build.core.shards import ImageShardWriter
from janus_build.dedup import DedupConfig, EvalSet, run_dedup
from janus_build.dedup.testset import TRANSFORMS, jpeg_bytes, textured_image
from janus_build.errors import ConfigError, InputError, OutputError

EVAL_SIZE = 160


def _write_eval_tree(root: Path, seeds: range) -> list[str]:
    """An ImageNet-style class-folder tree (nested one level deeper for half), JPEG and PNG."""
    files = []
    for n, seed in enumerate(seeds):
        folder = root / f"n0{n % 3}" / ("extra" if n % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        image = textured_image(seed, EVAL_SIZE)
        name = f"img{seed}.JPEG" if n % 4 else f"img{seed}.png"
        image.save(folder / name) if name.endswith(".png") else image.save(folder / name, quality=92)
        files.append((folder / name).relative_to(root).as_posix())
    return files


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """12 evaluation images; a training stage with one transformed copy of each and 24 distinct images."""
    root = tmp_path_factory.mktemp("planted")
    eval_files = _write_eval_tree(root / "eval_val", range(100, 112))
    rng = np.random.default_rng(7)
    planted = {}
    with ImageShardWriter(root / "train", "00000") as writer:
        for n, (name, transform) in enumerate(TRANSFORMS.items()):
            source = textured_image(100 + n, EVAL_SIZE)
            key = f"copy-{name.replace('_', '-')}"
            writer.write(key, jpeg_bytes(transform(source, rng), 85), {"label": 1})
            planted[key] = eval_files[n]
        for n in range(12):
            writer.write(f"other-{n}", jpeg_bytes(textured_image(5000 + n, 200)), {"label": 2})
    with ImageShardWriter(root / "train", "00001") as writer:
        for n in range(12, 24):
            writer.write(f"other-{n}", jpeg_bytes(textured_image(5000 + n, 180)), {"label": 2})
    return {"root": root, "planted": planted, "eval_files": eval_files}


def _config(root: Path, out: str = "out", **options) -> DedupConfig:
    options.setdefault("eval_sets", (EvalSet("imagenet_val", root / "eval_val"),))
    return DedupConfig(stages=(root / "train",), out=root / out, **options)


def test_every_planted_copy_is_found_and_nothing_else(planted):
    root = planted["root"]
    summary = run_dedup(_config(root))

    pairs = pq.read_table(root / "out" / "contaminated.parquet").to_pylist()
    assert {p["key"]: p["eval_file"] for p in pairs} == planted["planted"]
    assert len(pairs) == len(TRANSFORMS)  # each copy matches its own original only
    mirrored = next(p for p in pairs if p["key"] == "copy-mirror")
    assert mirrored["eval_variant"].startswith("flip-")
    assert summary["contaminated"] == len(TRANSFORMS)
    assert summary["samples"] == summary["checked"] == len(TRANSFORMS) + 24
    assert summary["eval_sets"]["imagenet_val"]["contaminated_samples"] == len(TRANSFORMS)
    assert summary["eval_sets"]["imagenet_val"]["images"] == 12

    exclude = pq.read_table(root / "out" / "exclude_keys.parquet").to_pylist()
    assert exclude == [{"key": k, "eval_sets": ["imagenet_val"]} for k in sorted(planted["planted"])]
    on_disk = json.loads((root / "out" / "_contamination.json").read_text())
    assert on_disk["format"] == "janus-contamination/1" and on_disk["contaminated"] == len(TRANSFORMS)
    samples = pq.read_table(root / "out" / "samples").to_pylist()  # the shard directory opens as-is
    assert sorted(s["key"] for s in samples if s["contaminated"]) == sorted(planted["planted"])
    assert all(s["status"] == "success" and s["phash"] is not None for s in samples)


def test_without_crop_and_flip_views_the_cropped_and_mirrored_copies_are_missed(planted):
    root = planted["root"]
    run_dedup(_config(root, "out-plain", crops=False, flips=False))
    found = set(pq.read_table(root / "out-plain" / "exclude_keys.parquet")["key"].to_pylist())
    assert "copy-mirror" not in found and "copy-crop-10pct" not in found
    assert {"copy-jpeg-q20", "copy-resize-half", "copy-colour-gains"} <= found


def test_demo_like_sources_and_evaluation_sets_find_nothing(tmp_path):
    """A fetch-like stage (DIR/images/) and five evaluation sets of distinct images: 0 found."""
    with ImageShardWriter(tmp_path / "fetch" / "images", "00000") as writer:
        for n in range(30):
            writer.write(f"flickr-{n}", jpeg_bytes(textured_image(20_000 + n, 128)), {})
    eval_sets = []
    for s, name in enumerate(("imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")):
        _write_eval_tree(tmp_path / name, range(30_000 + 10 * s, 30_000 + 10 * s + 6))
        eval_sets.append(EvalSet(name, tmp_path / name))
    summary = run_dedup(DedupConfig(stages=(tmp_path / "fetch",), eval_sets=tuple(eval_sets), out=tmp_path / "out"))
    assert summary["samples"] == 30 and summary["contaminated"] == 0
    assert all(s["contaminated_samples"] == 0 for s in summary["eval_sets"].values())
    assert pq.read_table(tmp_path / "out" / "exclude_keys.parquet").num_rows == 0


def test_rerun_resumes_and_writes_the_same_outputs(planted):
    root = planted["root"]
    first = run_dedup(_config(root, "out-resume"))
    before = pq.read_table(root / "out-resume" / "contaminated.parquet")
    marker = root / "out-resume" / "samples" / "_stats" / "00001.json"
    written = marker.stat().st_mtime_ns
    again = run_dedup(_config(root, "out-resume", workers=2))  # workers may change on resume
    assert again["shards_skipped"] == 2 and again["shards_written"] == 0
    assert marker.stat().st_mtime_ns == written
    assert pq.read_table(root / "out-resume" / "contaminated.parquet").equals(before)
    assert {k: again[k] for k in ("samples", "contaminated")} == {k: first[k] for k in ("samples", "contaminated")}
    with pytest.raises(OutputError, match="max_phash"):
        run_dedup(_config(root, "out-resume", max_phash=4))


def test_an_interrupted_shard_is_redone_and_a_changed_eval_set_redoes_every_shard(planted, tmp_path):
    root = planted["root"]
    eval_copy = tmp_path / "val"
    _write_eval_tree(eval_copy, range(100, 112))
    config = _config(root, "out-changed", eval_sets=(EvalSet("imagenet_val", eval_copy),))
    run_dedup(config)
    (root / "out-changed" / "samples" / "_stats" / "00000.json").unlink()  # as if killed before the marker
    assert run_dedup(config)["shards_written"] == 1
    (eval_copy / "n00" / "img100.png").unlink()  # the evaluation set changed
    summary = run_dedup(config)
    assert summary["shards_written"] == 2
    assert summary["eval_sets"]["imagenet_val"]["images"] == 11
    assert summary["contaminated"] == len(TRANSFORMS) - 1


def test_missing_or_empty_eval_folder_is_a_one_line_error(planted, tmp_path):
    root = planted["root"]
    with pytest.raises(InputError, match=r"^--eval imagenet_r=\S+nowhere: no such directory$"):
        run_dedup(_config(root, "out-bad", eval_sets=(EvalSet("imagenet_r", tmp_path / "nowhere"),)))
    (tmp_path / "empty" / "n01").mkdir(parents=True)
    (tmp_path / "empty" / "n01" / "notes.txt").write_text("no images")
    with pytest.raises(InputError, match="holds no images"):
        run_dedup(_config(root, "out-bad", eval_sets=(EvalSet("sketch", tmp_path / "empty"),)))
    assert not (root / "out-bad").exists()  # nothing written before the inputs were checked


def test_bad_options_name_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="--max-phash"):
        DedupConfig(stages=(tmp_path,), eval_sets=(EvalSet("a", tmp_path),), out=tmp_path, max_phash=40)
    with pytest.raises(ConfigError, match="given twice"):
        DedupConfig(stages=(tmp_path,), eval_sets=(EvalSet("a", tmp_path), EvalSet("a", tmp_path)), out=tmp_path)
    with pytest.raises(ConfigError, match="--eval"):
        EvalSet.parse("bad name=/x")
    assert EvalSet.parse(str(tmp_path)).name == tmp_path.name


def test_unreadable_images_are_status_rows_not_failures(tmp_path):
    evals = tmp_path / "eval"
    _write_eval_tree(evals, range(100, 104))
    (evals / "n00" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with ImageShardWriter(tmp_path / "train", "00000") as writer:
        writer.write("good", jpeg_bytes(textured_image(100, EVAL_SIZE), 80), {})
        writer.write("corrupt", b"\xff\xd8\xff\xe0" + b"\x00" * 200, {})  # a JPEG header, then nothing usable
        writer.write("failed-download", None, {}, status="download_error", error_message="HTTP 404")
        writer.write("blank", jpeg_bytes(textured_image(1, 64).point(lambda v: 128)), {})
    summary = run_dedup(
        DedupConfig(stages=(tmp_path / "train",), eval_sets=(EvalSet("val", evals),), out=tmp_path / "o")
    )
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "o" / "samples").to_pylist()}
    assert rows["good"]["contaminated"] and rows["good"]["status"] == "success"
    assert rows["corrupt"]["status"] == "decode_error" and "0x" not in rows["corrupt"]["error_message"]
    assert rows["failed-download"]["status"] == "download_error"
    assert rows["blank"]["status"] == "too_plain" and not rows["blank"]["contaminated"]
    assert (summary["checked"], summary["failed"], summary["too_plain"]) == (1, 2, 1)
    assert summary["eval_sets"]["val"]["unreadable"] == 1 and summary["eval_sets"]["val"]["images"] == 5


def test_a_plain_webdataset_folder_and_a_corrupt_tar(tmp_path):
    evals = tmp_path / "eval"
    _write_eval_tree(evals, range(100, 103))
    plain = tmp_path / "wds"
    plain.mkdir()
    with tarfile.open(plain / "part-0.tar", "w") as tar:
        image = tmp_path / "x.jpg"
        image.write_bytes(jpeg_bytes(textured_image(101, EVAL_SIZE), 70))
        tar.add(image, arcname="sample-1.jpg")
    summary = run_dedup(DedupConfig(stages=(plain,), eval_sets=(EvalSet("val", evals),), out=tmp_path / "o"))
    assert summary["contaminated"] == 1
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "00000.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(InputError, match="corrupt or truncated tar"):
        run_dedup(DedupConfig(stages=(tmp_path / "broken",), eval_sets=(EvalSet("val", evals),), out=tmp_path / "o2"))


def test_two_workers_write_what_one_writes(planted):
    root = planted["root"]
    run_dedup(_config(root, "out-w1"))
    run_dedup(_config(root, "out-w2", workers=2))
    for name in ("contaminated.parquet", "exclude_keys.parquet"):
        assert pq.read_table(root / "out-w2" / name).equals(pq.read_table(root / "out-w1" / name))
    one = pq.read_table(root / "out-w1" / "samples").sort_by("key")
    two = pq.read_table(root / "out-w2" / "samples").sort_by("key")
    assert one.drop_columns(["stage"]).equals(two.drop_columns(["stage"]))
    assert pq.read_table(root / "out-w1" / "_eval" / "00000.parquet").equals(
        pq.read_table(root / "out-w2" / "_eval" / "00000.parquet")
    )


def test_a_balance_output_train_split_is_checked(tmp_path):
    from PIL import Image

    from janus_build.demo.eval_sets import write_synthetic_shards
    from janus_build.demo.images import class_image

    train = write_synthetic_shards(tmp_path / "bal", class_ids=(6, 13), per_class=4, size=96)
    evals = tmp_path / "eval" / "n0"
    evals.mkdir(parents=True)
    leaked = Image.open(io.BytesIO(class_image(13, 2, size=96))).resize((150, 150))  # an upscaled copy
    leaked.save(evals / "leaked.png")
    textured_image(77, 128).save(evals / "other.JPEG")
    with pytest.raises(InputError, match="name .*train"):
        run_dedup(DedupConfig(stages=(tmp_path / "bal",), eval_sets=(EvalSet("v", evals.parent),), out=tmp_path / "o"))
    summary = run_dedup(DedupConfig(stages=(train,), eval_sets=(EvalSet("v", evals.parent),), out=tmp_path / "o"))
    assert summary["samples"] == 8
    assert pq.read_table(tmp_path / "o" / "exclude_keys.parquet")["key"].to_pylist() == ["syn-13-2"]


def test_a_sample_keeps_only_its_closest_matches(tmp_path, monkeypatch):
    from janus_build.dedup import check

    monkeypatch.setattr(check, "MAX_MATCHES", 2)
    (tmp_path / "e").mkdir()
    image = textured_image(42, 128)
    for n, quality in enumerate((95, 60, 30)):  # three copies; closest first, ties by file name
        image.save(tmp_path / "e" / f"copy{n}.JPEG", quality=quality)
    with ImageShardWriter(tmp_path / "train", "00000") as writer:
        writer.write("original", jpeg_bytes(image, 95), {})
    run_dedup(DedupConfig(stages=(tmp_path / "train",), eval_sets=(EvalSet("v", tmp_path / "e"),), out=tmp_path / "o"))
    pairs = pq.read_table(tmp_path / "o" / "contaminated.parquet").to_pylist()
    assert len(pairs) == 2 and "copy2.JPEG" not in {p["eval_file"] for p in pairs}
