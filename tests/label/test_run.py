"""janus label: zero-shot and classifier labels, known answers, threshold, accuracy, resume."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from janus_build.core.shards import ImageShardWriter
from janus_build.errors import ConfigError, InputError
from janus_build.label.config import LabelConfig
from janus_build.label.models import zero_shot_labeller
from janus_build.label.run import run
from janus_build.progress import NULL_PROGRESS

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
CLASS_OF = {"red": 10, "green": 20, "blue": 30}


def _jpeg(rgb, size=32):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def stage(tmp_path):
    """An image stage: 4 images per colour with the true class in `label`, one yellow, one broken."""
    directory = tmp_path / "images"
    with ImageShardWriter(directory, "00000") as writer:
        for colour, rgb in COLOURS.items():
            for i in range(4):
                writer.write(f"{colour}-{i}", _jpeg(rgb), {"label": CLASS_OF[colour]})
        writer.write("yellow-0", _jpeg((255, 255, 0)), {"label": 10})
        writer.write("broken-0", b"\xff\xd8\xff not a jpeg", {"label": 20})
    labels = tmp_path / "colours.tsv"
    labels.write_text("class_id\tname\n10\tred thing\n20\tgreen thing\n30\tblue thing\n")
    return directory, labels


class ColourTowers:
    """Image and text towers sharing fixed embeddings: a colour's image and its class's prompts
    map to the same unit vector, so the zero-shot answer is known."""

    def __init__(self, tokenizer):
        import torch

        self.tokenizer = tokenizer
        self.logit_scale = torch.tensor(4.6052)  # log(100), CLIP's

    def to(self, device):
        return self

    def eval(self):
        return self

    def encode_image(self, images):
        # un-normalise to [0, 1] RGB means; a channel is "on" above one half (yellow: red and green)
        import torch
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        means = images.mean(dim=(2, 3)) * torch.tensor(OPENAI_DATASET_STD) + torch.tensor(OPENAI_DATASET_MEAN)
        return (means > 0.5).float()

    def encode_text(self, tokens, normalize=False):
        import torch

        rows = []
        for row in tokens.tolist():
            words = set(self.tokenizer.decode([t for t in row if t]).replace(".", " ").split())
            rows.append([float(word in words) for word in ("red", "green", "blue")])
        embeddings = torch.tensor(rows)
        return torch.nn.functional.normalize(embeddings, dim=-1) if normalize else embeddings


def _labeller(prompts="openai"):
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transform import image_transform

    tokenizer = SimpleTokenizer(context_length=32)
    return zero_shot_labeller(
        ColourTowers(tokenizer),
        tokenizer,
        image_transform(32, is_train=False),
        ["red thing", "green thing", "blue thing"],
        prompts,
        "cpu",
    )


def test_zero_shot_known_answer_with_the_80_templates(stage, tmp_path):
    directory, labels = stage
    config = LabelConfig(stage_dir=directory, out=tmp_path / "out", labels=str(labels), truth_col="label", workers=0)
    summary = run(config, NULL_PROGRESS, labeller=_labeller())
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()}
    for colour, class_id in CLASS_OF.items():
        for i in range(4):
            row = rows[f"{colour}-{i}"]
            assert row["label"] == class_id and row["labels"] == [class_id] and row["confidence"] > 0.99
            assert row["label_source"] == "zeroshot:ViT-L-14" and row["top_labels"][0] == class_id
    assert rows["broken-0"]["status"] == "decode_error" and rows["broken-0"]["label"] == -1
    # yellow is red and green at once: a coin flip between them, below a 0.6 threshold
    assert rows["yellow-0"]["confidence"] == pytest.approx(0.5, abs=0.01)
    assert summary["rows"] == 14 and summary["labelled"] == 13
    assert summary["label_accuracy"] == pytest.approx(13 / 13 if rows["yellow-0"]["label"] == 10 else 12 / 13)
    stats = json.loads((tmp_path / "out" / "_stats.json").read_text())
    assert stats["dataset_utilization"] == pytest.approx(stats["correct"] / 14)


def test_threshold_leaves_uncertain_images_unlabelled(stage, tmp_path):
    directory, labels = stage
    config = LabelConfig(
        stage_dir=directory, out=tmp_path / "o", labels=str(labels), threshold=0.6, prompts="single", workers=0
    )
    run(config, NULL_PROGRESS, labeller=_labeller("single"))
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "o" / "00000.parquet").to_pylist()}
    assert rows["yellow-0"]["label"] == -1 and rows["yellow-0"]["labels"] == []
    assert rows["red-0"]["label"] == 10


def test_resume_skips_done_shards_and_redoes_a_changed_input(stage, tmp_path):
    directory, labels = stage
    config = LabelConfig(stage_dir=directory, out=tmp_path / "o", labels=str(labels), workers=0)
    run(config, NULL_PROGRESS, labeller=_labeller())
    marker = tmp_path / "o" / "_stats" / "00000.json"
    first = marker.stat().st_mtime_ns
    run(config, NULL_PROGRESS, labeller=_labeller())
    assert marker.stat().st_mtime_ns == first  # nothing redone
    with ImageShardWriter(directory, "00000") as writer:  # the input shard is rewritten
        writer.write("blue-9", _jpeg(COLOURS["blue"]), {"label": 30})
    run(config, NULL_PROGRESS, labeller=_labeller())
    assert [r["key"] for r in pq.read_table(tmp_path / "o" / "00000.parquet").to_pylist()] == ["blue-9"]


def test_real_tiny_open_clip_and_timm_paths(stage, tmp_path):
    directory, _ = stage
    for model, out in (("open_clip:tiny", "clip"), ("timm:test_resnet", "timm")):
        config = LabelConfig(
            stage_dir=directory, out=tmp_path / out, model=model, pretrained="none", prompts="single", workers=0
        )
        summary = run(config, NULL_PROGRESS)
        rows = pq.read_table(tmp_path / out / "00000.parquet").to_pylist()
        from janus_build.labels import load_label_set

        in100 = set(load_label_set("in100").ids)
        good = [r for r in rows if r["status"] == "success"]
        assert len(good) == 13 and all(r["label"] in in100 and len(r["top_labels"]) == 5 for r in good)
        assert summary["label_source"] == ("zeroshot:tiny" if out == "clip" else "classifier:test_resnet")


def test_bad_options_are_one_line_errors(stage, tmp_path):
    directory, labels = stage
    with pytest.raises(ConfigError, match="--model"):
        LabelConfig(stage_dir=directory, out=tmp_path / "o", model="clip-vit")
    with pytest.raises(ConfigError, match="--threshold"):
        LabelConfig(stage_dir=directory, out=tmp_path / "o", threshold=1.5)
    config = LabelConfig(stage_dir=directory, out=tmp_path / "o", labels=str(labels), truth_col="nope", workers=0)
    with pytest.raises(InputError, match="--truth-col nope: no such column"):
        run(config, NULL_PROGRESS, labeller=_labeller())
