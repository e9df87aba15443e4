"""``janus caption`` end to end with a tiny random BLIP loaded the way users load the real one.

No network: the model is built from ``BlipConfig`` with a tiny tokenizer and image processor,
``save_pretrained`` to a temporary directory, and loaded by ``--model DIR`` through
``from_pretrained``, as ``Salesforce/blip-image-captioning-base`` would be.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build import schemas
from janus_build.caption import CaptionConfig, run_caption
from janus_build.core.shards import ImageShardWriter, read_index
from janus_build.demo.images import class_image
from janus_build.errors import ConfigError, MissingResourceError, OutputError
from janus_build.progress import Progress


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """BlipConfig + a tiny BertTokenizer vocabulary + BlipImageProcessor, saved with save_pretrained."""
    from janus_build.demo.tiny_blip import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def write_stage(directory: Path, shards: int = 2, per_shard: int = 5, human: dict[str, str] | None = None) -> Path:
    """A fetch-style image stage: shards of synthetic images plus one failed download per shard."""
    for s in range(shards):
        with ImageShardWriter(directory, f"{s:05d}") as writer:
            for i in range(per_shard):
                key = f"flickr-{s}{i:02d}"
                metadata = {"class_id": i, "title": f"Vizsla number {i} IMG_0042", "license": "CC BY 2.0"}
                if human is not None:
                    metadata["human_caption"] = human.get(key)
                writer.write(key, class_image(i, s, 40), metadata)
            writer.write(
                f"flickr-{s}xx",
                None,
                {"class_id": 0, "title": "gone"},
                status="failed_to_download",
                error_message="HTTP 404",
            )
    return directory


def config(stage: Path, out: Path, model: Path, **kwargs) -> CaptionConfig:
    kwargs.setdefault("num_workers", 0)
    kwargs.setdefault("batch_size", 3)
    kwargs.setdefault("max_length", 12)
    return CaptionConfig(stage_dir=stage, out=out, model=str(model), **kwargs)


def read_captions(out: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("[!.]*.parquet")))


def test_fetch_output_end_to_end(tmp_path, tiny_model):
    fetch = tmp_path / "fetch"
    write_stage(fetch / "images")
    (fetch / "metadata").mkdir()
    summary = run_caption(config(fetch, tmp_path / "out", tiny_model))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "00000.parquet",
        "00001.parquet",
        "_lock",
        "_manifest.json",
        "_stats",
    ]
    assert sorted(p.name for p in (out / "_stats").iterdir()) == ["00000.json", "00001.json"]
    assert pq.read_table(out).num_rows == 12  # the directory opens as a parquet dataset as-is
    table = read_captions(out)
    schemas.validate(table, schemas.CAPTIONS, "test")
    assert table.column("key").to_pylist() == read_index(fetch / "images").column("key").to_pylist()
    rows = {r["key"]: r for r in table.to_pylist()}
    ok = [r for r in rows.values() if r["status"] == "success"]
    assert len(ok) == 10 and summary["successes"] == 10 and summary["failures"] == {"failed_to_download": 2}
    for row in ok:
        assert row["caption_blip"] and row["caption_blip_spellchecked"]
        # The title's new words follow the caption once; the camera file name is dropped.
        assert row["caption_blip_title"].startswith(row["caption_blip_spellchecked"])
        assert "Vizsla" in row["caption_blip_title"] and "IMG_0042" not in row["caption_blip_title"]
        assert row["prose_caption"] == row["caption_blip_title"] and row["prose_caption_source"] == "blip_title"
        assert "picture of" not in row["caption_blip"][:11]  # the prompt is stripped
    failed = rows["flickr-0xx"]
    assert failed["status"] == "failed_to_download" and failed["error_message"] == "HTTP 404"
    assert failed["caption_blip"] is None and failed["prose_caption"] is None
    stats = json.loads((out / "_stats" / "00000.json").read_text())
    assert stats["count"] == 6 and stats["successes"] == 5 and stats["failures"] == {"failed_to_download": 1}
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["stage"] == "caption" and manifest["completed"] and manifest["config"]["top_p"] == 0.9


def test_generation_settings_reach_generate(tmp_path, tiny_model, monkeypatch):
    from transformers import BlipForConditionalGeneration

    calls: list[dict] = []
    original = BlipForConditionalGeneration.generate

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BlipForConditionalGeneration, "generate", spy)
    stage = write_stage(tmp_path / "stage", shards=1, per_shard=4)
    run_caption(
        CaptionConfig(
            stage_dir=stage,
            out=tmp_path / "paper",
            model=str(tiny_model),
            num_workers=0,
            batch_size=8,
            spellcheck=False,
        )
    )
    assert len(calls) == 1
    paper = calls[0]
    assert paper["do_sample"] is True and paper["top_p"] == 0.9 and paper["max_length"] == 40
    assert paper["min_length"] == 5 and paper["repetition_penalty"] == 1.1 and paper["num_beams"] == 1
    assert paper["pixel_values"].shape[0] == 4 and paper["input_ids"].shape[0] == 4  # one batch, prompt per image

    calls.clear()
    run_caption(
        config(
            stage,
            tmp_path / "beam",
            tiny_model,
            num_beams=3,
            max_length=9,
            min_length=2,
            repetition_penalty=1.0,
            prompt="",
        )
    )
    beam = calls[0]
    assert beam["num_beams"] == 3 and beam["do_sample"] is False and "top_p" not in beam
    assert beam["max_length"] == 9 and beam["min_length"] == 2 and beam["repetition_penalty"] == 1.0
    assert "input_ids" not in beam


def test_seed_makes_runs_reproducible_whatever_the_workers(tmp_path, tiny_model):
    stage = write_stage(tmp_path / "stage", shards=2, per_shard=4)
    first = read_captions_of(run_to(tmp_path / "a", stage, tiny_model, seed=7, num_workers=0))
    again = read_captions_of(run_to(tmp_path / "b", stage, tiny_model, seed=7, num_workers=2))
    other = read_captions_of(run_to(tmp_path / "c", stage, tiny_model, seed=8, num_workers=0))
    assert first == again
    assert first != other


def run_to(out: Path, stage: Path, model: Path, **kwargs) -> Path:
    run_caption(config(stage, out, model, **kwargs))
    return out


def read_captions_of(out: Path) -> list:
    return read_captions(out).select(["key", "caption_blip"]).to_pylist()


class KillAfter(Progress):
    """Stops the run (as a kill would) once ``limit`` images are done."""

    def __init__(self, limit: int) -> None:
        self.limit, self.done = limit, 0

    def advance(self, task: str, amount: int = 1) -> None:
        self.done += amount
        if self.done >= self.limit:
            raise KeyboardInterrupt


def test_resume_after_a_killed_run_matches_an_uninterrupted_run(tmp_path, tiny_model):
    stage = write_stage(tmp_path / "stage", shards=3, per_shard=4)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_caption(config(stage, out, tiny_model, batch_size=2), KillAfter(6))  # mid-way through shard 1
    assert sorted(p.name for p in (out / "_stats").glob("*.json")) == ["00000.json"]
    assert not (out / "00001.parquet").exists() and not list(out.glob(".*tmp"))
    first_shard = (out / "00000.parquet").stat().st_mtime_ns

    summary = run_caption(config(stage, out, tiny_model, batch_size=2))
    assert summary["shards_skipped"] == 1 and summary["shards_written"] == 2
    assert (out / "00000.parquet").stat().st_mtime_ns == first_shard
    fresh = run_to(tmp_path / "fresh", stage, tiny_model, batch_size=2)
    assert read_captions(out).to_pylist() == read_captions(fresh).to_pylist()

    # Resuming with an option that changes captions is refused; --overwrite starts again.
    with pytest.raises(OutputError, match="top_p"):
        run_caption(config(stage, out, tiny_model, batch_size=2, top_p=0.5))
    again = run_caption(config(stage, out, tiny_model, batch_size=2, top_p=0.5, overwrite=True))
    assert again["shards_written"] == 3


def test_prose_caption_prefers_the_human_caption(tmp_path, tiny_model):
    human = {"flickr-000": "A hunting dog stands in tall grass.", "flickr-001": "  "}
    stage = write_stage(tmp_path / "stage", shards=1, per_shard=3, human=human)
    rows = {r["key"]: r for r in read_captions(run_to(tmp_path / "out", stage, tiny_model)).to_pylist()}
    assert rows["flickr-000"]["prose_caption"] == "A hunting dog stands in tall grass."
    assert rows["flickr-000"]["prose_caption_source"] == "human"
    assert rows["flickr-000"]["caption_blip_title"]  # BLIP still captions it
    for key in ("flickr-001", "flickr-002"):  # blank or missing: BLIPTitle
        assert rows[key]["prose_caption"] == rows[key]["caption_blip_title"]
    with pytest.raises(ConfigError, match="--human-caption-col 'narratives'"):
        run_caption(config(stage, tmp_path / "bad", tiny_model, human_caption_col="narratives"))


def encoded(image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_bad_images_become_rows_not_crashes(tmp_path, tiny_model):
    from PIL import Image

    good = class_image(2, 0, 40)
    bad = {
        "zero": (b"", "jpg"),
        "truncated": (good[: len(good) // 2], "jpg"),
        "garbage": (b"<html>not found</html>", "jpg"),
        "cmyk": (encoded(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"), "jpg"),
        "grey": (encoded(Image.new("L", (40, 40), 100), "PNG"), "png"),
        "alpha": (encoded(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), "PNG"), "png"),
        "huge": (encoded(Image.new("L", (20_000, 600), 50), "JPEG"), "jpg"),
    }
    with ImageShardWriter(tmp_path / "stage", "00000") as writer:
        for key, (data, ext) in bad.items():
            writer.write(key, data, {"title": key}, image_ext=ext)
    rows = {
        r["key"]: r
        for r in read_captions(run_to(tmp_path / "out", tmp_path / "stage", tiny_model, num_workers=1)).to_pylist()
    }
    assert {k: r["status"] for k, r in rows.items()} == {
        "zero": "empty_image",
        "truncated": "decode_error",
        "garbage": "decode_error",
        "cmyk": "success",
        "grey": "success",
        "alpha": "success",
        "huge": "success",
    }
    assert all(rows[k]["error_message"] for k in ("zero", "truncated", "garbage"))
    assert all(rows[k]["caption_blip"] for k in ("cmyk", "grey", "alpha", "huge"))


def test_webdataset_and_img2dataset_inputs(tmp_path, tiny_model):
    import webdataset as wds

    plain = tmp_path / "wds"
    plain.mkdir()
    with wds.TarWriter(str(plain / "shard-a.tar")) as sink:
        for i in range(3):
            sample = {"__key__": f"s{i}", "png": encoded_png(i), "json": json.dumps({"title": f"tench {i}"}).encode()}
            if i == 2:
                del sample["png"]
            sink.write(sample)
    rows = read_captions(run_to(tmp_path / "out1", plain, tiny_model)).to_pylist()
    assert [r["key"] for r in rows] == ["s0", "s1", "s2"]
    assert [r["status"] for r in rows] == ["success", "success", "missing_image"]
    assert (tmp_path / "out1" / "shard-a.parquet").is_file()

    # img2dataset: tar + parquet (key, status, caption, ...) without offsets, plus a stats marker.
    i2d = tmp_path / "i2d"
    i2d.mkdir()
    with wds.TarWriter(str(i2d / "00000.tar")) as sink:
        for i in range(2):
            sink.write({"__key__": f"00000000{i}", "jpg": class_image(i, 0, 40), "txt": b"alt text", "json": b"{}"})
    pq.write_table(
        pa.table(
            {
                "key": ["000000000", "000000001", "000000002"],
                "caption": ["alt", "alt", "alt"],
                "status": ["success", "success", "failed_to_download"],
                "error_message": [None, None, "timeout"],
                "localized_narrative": ["In this image we can see a fish.", None, None],
            }
        ),
        i2d / "00000.parquet",
    )
    (i2d / "00000_stats.json").write_text("{}")
    (i2d / "00001.tar").write_bytes(b"")  # unfinished shard (no _stats.json): skipped
    rows = {r["key"]: r for r in read_captions(run_to(tmp_path / "out2", i2d, tiny_model)).to_pylist()}
    assert {k: r["status"] for k, r in rows.items()} == {
        "000000000": "success",
        "000000001": "success",
        "000000002": "failed_to_download",
    }
    assert rows["000000000"]["prose_caption"] == "In this image we can see a fish."
    assert rows["000000001"]["prose_caption"] == rows["000000001"]["caption_blip_spellchecked"]  # no title column
    assert rows["000000002"]["error_message"] == "timeout"


def encoded_png(i: int) -> bytes:
    from PIL import Image

    return encoded(Image.open(io.BytesIO(class_image(i, 1, 40))), "PNG")


def test_missing_weights_give_one_clear_message(tmp_path, monkeypatch, tiny_model):
    import huggingface_hub.constants

    # As on a machine without network: nothing cached, the hub unreachable (read at import, so patched).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    stage = write_stage(tmp_path / "stage", shards=1, per_shard=1)
    with pytest.raises(MissingResourceError, match="`hf download Salesforce/blip-image-captioning-base`"):
        run_caption(CaptionConfig(stage_dir=stage, out=tmp_path / "out", device="cpu"))
    with pytest.raises(MissingResourceError, match="no such directory"):
        run_caption(CaptionConfig(stage_dir=stage, out=tmp_path / "out2", model=str(tmp_path / "nowhere")))
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(MissingResourceError, match="save_pretrained"):
        run_caption(CaptionConfig(stage_dir=stage, out=tmp_path / "out3", model=str(empty)))
    with pytest.raises(ConfigError, match="classnames"):
        run_caption(
            CaptionConfig(
                stage_dir=stage, out=tmp_path / "out3", model=str(tiny_model), classnames=str(tmp_path / "nope.tsv")
            )
        )
    # the failed runs recorded nothing: the corrected command runs in the same --out, no --overwrite needed
    assert run_caption(config(stage, tmp_path / "out3", tiny_model))["successes"] == 1


def test_cli(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from janus_build.cli import app

    stage = write_stage(tmp_path / "stage", shards=1, per_shard=2)
    runner = CliRunner()
    args = [
        "caption",
        str(stage),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(tiny_model),
        "--num-workers",
        "0",
        "--max-length",
        "10",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(read_captions(tmp_path / "out")) == 3
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "1 already done" in again.output
    with pytest.raises(ConfigError, match="--device"):
        runner.invoke(
            app, ["caption", str(stage), "--out", str(tmp_path / "x"), "--device", "tpu"], catch_exceptions=False
        )


def _torchrun_caption(stage: Path, out: Path, model: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "janus_build", "caption", str(stage), "--out", str(out), "--model", str(model)]
    command += ["--num-workers", "0", "--batch-size", "3", "--max-length", "12", "--seed", "3", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_torchrun_two_cpu_processes_write_what_one_process_writes(tmp_path, tiny_model):
    stage = write_stage(tmp_path / "stage", shards=3, per_shard=3)
    one = run_to(tmp_path / "one", stage, tiny_model, seed=3)
    two = tmp_path / "two"
    result = _torchrun_caption(stage, two, tiny_model)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_captions(two).to_pylist() == read_captions(one).to_pylist()
    manifest = json.loads((two / "_manifest.json").read_text())
    assert manifest["completed"] and manifest["summary"]["shards_written"] == 3
    assert manifest["summary"]["rows"] == 12 and manifest["summary"]["successes"] == 9
    assert sorted(p.name for p in (two / "_stats").iterdir()) == ["00000.json", "00001.json", "00002.json"]

    # resumable: a shard lost (as after a kill) is redone, the others are kept as they are
    (two / "_stats" / "00001.json").unlink()
    (two / "00001.parquet").unlink()
    kept = (two / "00002.parquet").stat().st_mtime_ns
    result = _torchrun_caption(stage, two, tiny_model)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((two / "_manifest.json").read_text())["summary"]
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 2
    assert (two / "00002.parquet").stat().st_mtime_ns == kept
    assert read_captions(two).to_pylist() == read_captions(one).to_pylist()


def test_shards_are_dealt_round_robin():
    from janus_build.core.torchrun import Dist, deal

    names = ["00000", "00001", "00002", "00003", "00004"]
    assert deal(names, Dist(0, 2)) == ["00000", "00002", "00004"] and deal(names, Dist(1, 2)) == ["00001", "00003"]
    assert deal(names, Dist()) == names


def test_a_changed_input_shard_is_captioned_again(tmp_path, tiny_model):
    stage = write_stage(tmp_path / "stage", shards=2, per_shard=2)
    out = run_to(tmp_path / "out", stage, tiny_model)
    with ImageShardWriter(stage, "00001") as writer:  # the same shard name, other images
        for i in range(4):
            writer.write(f"flickr-new{i}", class_image(i, 3, 40), {"title": "new"})
    summary = run_caption(config(stage, out, tiny_model))
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 1
    assert pq.read_table(out / "00001.parquet").column("key").to_pylist() == [f"flickr-new{i}" for i in range(4)]
