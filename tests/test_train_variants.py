"""janus train's Table 9 variants: multi-label CE, caption scramble/strip, JPEG-quality augmentation,
384-pixel inputs and the paper's architecture names (issue 14)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from janus_build.demo.eval_sets import write_synthetic_shards  # noqa: E402
from janus_build.errors import ConfigError  # noqa: E402
from janus_build.train.config import TrainConfig  # noqa: E402
from janus_build.train.data import (  # noqa: E402
    JpegQuality,
    ShardStream,
    TargetOptions,
    TextTransform,
    train_transform,
)
from janus_build.train.loop import multi_label_loss, train  # noqa: E402
from janus_build.train.models import CE_ARCHS, VL_ARCHS, ModelSpec, build_model  # noqa: E402

SIZE = 32
NAMES = ["great white shark", "stingray", "hen", "junco"]
# captions as Flickr and BLIP write them
FLICKR_TTD = "Great White Shark at Gansbaai sharkcagediving southafrica #shark Taken from the boat"
BLIP = "a large white shark swimming in the ocean"


def test_scramble_permutes_the_words_per_sample_and_epoch():
    scramble = TextTransform("scramble", NAMES, seed=0)
    once = scramble(FLICKR_TTD, "0/flickr-1")
    assert sorted(once.split()) == sorted(FLICKR_TTD.split())
    assert once == scramble(FLICKR_TTD, "0/flickr-1")  # reproducible
    orders = {scramble(FLICKR_TTD, f"{epoch}/flickr-1") for epoch in range(5)}
    assert len(orders) > 1  # a new order each epoch


def test_strip_keeps_only_class_name_words():
    strip = TextTransform("strip", NAMES)
    assert strip(FLICKR_TTD) == "Great White Shark #shark"
    assert strip(BLIP) == "white shark"
    assert strip("a photo taken in the morning") == ""  # nothing a zero-shot prompt uses: skipped by training


def test_jpeg_quality_reencodes_lossily_before_the_augmentation():
    from PIL import Image

    from janus_build.demo.images import class_image

    image = Image.open(io.BytesIO(class_image(6, 0, 64))).convert("RGB")
    low = JpegQuality(10)(image)
    assert low.size == image.size and low.mode == "RGB"
    import numpy as np

    difference = np.abs(np.asarray(low, dtype=np.float32) - np.asarray(image, dtype=np.float32))
    assert difference.mean() > 1.0  # quality 10 loses detail
    assert isinstance(train_transform("standard", 32, 10).transforms[0], JpegQuality)
    assert not isinstance(train_transform("standard", 32).transforms[0], JpegQuality)


def test_multi_label_loss_is_the_sum_of_each_classes_cross_entropy():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 1.0, 3.0, -2.0]])
    model = lambda images: logits  # noqa: E731
    one = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2]))
    assert torch.allclose(multi_label_loss(model, None, one), ce)
    two = torch.tensor([[1.0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    log_p = torch.log_softmax(logits, -1)
    expected = -(log_p[0, 0] + log_p[0, 1] + log_p[1, 2]) / 2
    assert torch.allclose(multi_label_loss(model, None, two), expected)


def test_stream_builds_multi_hot_targets_from_the_labels_member():
    stream = ShardStream([], lambda x: x, head_ids=[2, 6, 8, 13], targets=TargetOptions(multi_label=True))
    target = stream._target({"cls": b"6", "labels": json.dumps([6, 13, 999]).encode()})
    assert target.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert stream._target({"cls": b"8"}).tolist() == [0.0, 0.0, 1.0, 0.0]  # no member: its one label
    assert stream._target({"cls": b"999"}) is None


def test_options_are_checked():
    for changes, flag in (
        ({"multi_label": True, "loss": "vl"}, "--multi-label"),
        ({"text_transform": "scramble"}, "--text-transform"),
        ({"text_transform": "shuffle", "loss": "vl"}, "--text-transform"),
        ({"jpeg_quality": 0}, "--jpeg-quality"),
        ({"jpeg_quality": 10, "decode": "gpu"}, "--jpeg-quality"),
    ):
        with pytest.raises(ConfigError, match=flag):
            TrainConfig(shards=("x",), out="y", **changes)


def test_the_papers_architecture_names_exist():
    import open_clip
    import timm

    for name in ("RN50", "RN26", "RN50x4", "ViT-S-16", "DeiT-S-16", "GCViT-S-16"):
        assert CE_ARCHS[name] in timm.list_models()
    for name in ("RN50", "RN50x4", "ViT-S-16"):
        assert VL_ARCHS[name] in open_clip.list_models()


@pytest.mark.parametrize("loss", ["ce", "vl"])
def test_384_pixel_inputs(loss):
    spec = ModelSpec(arch="tiny", loss=loss, head_ids=(1, 2, 3), image_size=384)
    model = build_model(spec).eval()
    with torch.no_grad():
        images = torch.zeros(1, 3, 384, 384)
        out = model(images) if loss == "ce" else model.encode_image(images)
    assert out.shape[0] == 1 and out.shape[-1] == (3 if loss == "ce" else 32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_shards(root, per_class=8, size=SIZE, shards=2)
    return root


@pytest.mark.parametrize(
    "changes",
    [
        {"multi_label": True, "jpeg_quality": 10},
        {"loss": "vl", "text_transform": "scramble"},
        {"loss": "vl", "text_transform": "strip"},
    ],
)
def test_variants_train(shards: Path, tmp_path: Path, changes):
    config = TrainConfig(
        shards=(str(shards),),
        out=str(tmp_path / "run"),
        arch="tiny",
        epochs=1,
        batch_size=8,
        steps_per_epoch=2,
        image_size=SIZE,
        workers=0,
        augment="standard",
        shuffle_buffer=16,
        device="cpu",
        **changes,
    )
    summary = train(config)
    assert summary["steps"] == 2 and summary["last_loss"] > 0


def test_tokscramble_scrambles_the_zero_shot_prompts_too(monkeypatch):
    """The paper scrambles token order "during training and inference": a scramble model's
    checkpoint spec says so, and its zero-shot classifier is built from scrambled prompts."""
    from janus_build.train import models

    seen: list[list[str]] = []

    class Tokens:
        def __init__(self, prompts):
            seen.append(list(prompts))

        def to(self, device):
            return self

    class Model:
        def encode_text(self, tokens):
            return torch.ones(len(seen[-1]), 4)

    monkeypatch.setattr(models, "tokenizer_for", lambda spec: Tokens)
    names = ["great white shark", "american black bear"]
    plain = ModelSpec(arch="tiny", loss="vl", head_ids=(2, 295))
    scrambled = ModelSpec(arch="tiny", loss="vl", head_ids=(2, 295), text_transform="scramble")
    models.zero_shot_weights(Model(), plain, names, "cpu", template="itap of a {} in the wild")
    models.zero_shot_weights(Model(), scrambled, names, "cpu", template="itap of a {} in the wild")
    assert seen[0] == ["itap of a great white shark in the wild", "itap of a american black bear in the wild"]
    assert seen[1] != seen[0] and [sorted(p.split()) for p in seen[1]] == [sorted(p.split()) for p in seen[0]]
    assert ModelSpec.from_dict(scrambled.to_dict()) == scrambled
    assert "text_transform" not in plain.to_dict()  # older checkpoints still compare equal on resume
