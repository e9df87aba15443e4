"""janus eval --baseline: open_clip zero-shot and timm classifiers on the restricted label set (issue 14)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from janus_build.cli import app  # noqa: E402
from janus_build.demo.eval_sets import write_synthetic_shift_folders  # noqa: E402
from janus_build.errors import ConfigError  # noqa: E402
from janus_build.label.models import Labeller  # noqa: E402
from janus_build.labels import load_label_set  # noqa: E402
from janus_build.train.evaluate import EvalConfig, evaluate  # noqa: E402

COLOURS = {10: (255, 0, 0), 20: (0, 255, 0), 30: (0, 0, 255)}


@pytest.fixture
def colours(tmp_path: Path) -> tuple[Path, Path]:
    """An ImageNet-val-layout folder of solid-colour images (3 per class) and a 3-class label set."""
    from PIL import Image

    wnids = load_label_set("in1k").wnids
    root = tmp_path / "val"
    for class_id, rgb in COLOURS.items():
        folder = root / wnids[class_id]
        folder.mkdir(parents=True)
        for i in range(3):
            buffer = io.BytesIO()
            Image.new("RGB", (16, 16), rgb).save(buffer, format="JPEG", quality=95)
            (folder / f"{i}.jpg").write_bytes(buffer.getvalue())
    labels = tmp_path / "colours.tsv"
    labels.write_text("class_id\tname\n10\tred\n20\tgreen\n30\tblue\n")
    return root, labels


def _colour_labeller(answer: dict[int, int]) -> Labeller:
    """Scores by nearest colour: an image of class c's colour gets probability 1 for ``answer[c]``."""
    order = list(COLOURS)

    def transform(image):
        return torch.tensor(image.resize((1, 1)).getpixel((0, 0)), dtype=torch.float32).view(3, 1, 1)

    def scores(images):
        pixels = images.view(len(images), 3)
        reference = torch.tensor([COLOURS[c] for c in order], dtype=torch.float32)
        nearest = torch.cdist(pixels, reference).argmin(dim=1)
        out = torch.zeros(len(images), len(order))
        for row, position in enumerate(nearest.tolist()):
            out[row, order.index(answer[order[position]])] = 1.0
        return out

    return Labeller(transform, scores, torch.device("cpu"))


def test_known_answers_on_the_restricted_label_set(colours):
    root, labels = colours
    config = EvalConfig(baseline="open_clip:test", labels=str(labels), imagenet_val=str(root), workers=0, device="cpu")
    right = evaluate(config, labeller=_colour_labeller({10: 10, 20: 20, 30: 30}))
    assert right["val_top1"] == 1.0 and right["shifts"]["imagenet_val"]["images"] == 9
    assert right["model"] == {"baseline": "open_clip:test", "pretrained": "openai", "prompts": "openai"}
    wrong = evaluate(config, labeller=_colour_labeller({10: 20, 20: 10, 30: 30}))  # red <-> green swapped
    assert wrong["val_top1"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("baseline", ["open_clip:tiny", "timm:test_resnet"])
def test_tiny_random_baselines_score_every_shift(tmp_path: Path, baseline: str):
    folders = write_synthetic_shift_folders(tmp_path / "eval", per_class=2, size=32)
    config = EvalConfig(
        baseline=baseline,
        pretrained="none",
        prompts="single",
        labels="in100",
        workers=0,
        device="cpu",
        out=str(tmp_path / "m.json"),
        **folders,
    )
    metrics = evaluate(config)
    assert json.loads((tmp_path / "m.json").read_text())["model"]["baseline"] == baseline
    for shift in folders:
        assert 0.0 <= metrics["shifts"][shift]["top1"] <= 1.0 and metrics["shifts"][shift]["images"] > 0


def test_cli_and_bad_baselines(tmp_path: Path, colours):
    root, labels = colours
    out = tmp_path / "m.json"
    args = ["eval", "--baseline", "open_clip:tiny", "--pretrained", "none", "--prompts", "single"]
    args += ["--labels", str(labels), "--imagenet-val", str(root), "--workers", "0", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["shifts"]["imagenet_val"]["images"] == 9
    with pytest.raises(ConfigError, match="--baseline 'clip:RN50'"):
        evaluate(EvalConfig(baseline="clip:RN50", imagenet_val=str(root)))
    with pytest.raises(ConfigError, match="exactly one"):
        evaluate(EvalConfig(baseline="open_clip:RN50", timm_model="resnet50", imagenet_val=str(root)))
