"""Table 9 rows rebuilt end to end in miniature through the CLI, with the commands of
docs/reproduce-paper.md's "Every Table 9 row" section (issue 14): a label-source row
(cliplabel: janus label -> balance -> train), a caption-source row (VL-gtcaps) and
training-variant rows (tokscramble, jpeg10, multi-label CE on mc labels)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from balance_fixtures import label_file, make_ground_truth
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.shards import read_index

TRAIN = ["--arch", "tiny", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4", "--image-size", "32"]
TRAIN += ["--workers", "0", "--device", "cpu", "--augment", "standard", "--shuffle-buffer", "8"]


def _janus(*args: str) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"janus {' '.join(map(str, args))}\n{result.output}"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, Path]:
    """A 4-class IN100-like image stage (24 images, ground truth in `label`) and its label set."""
    root = tmp_path_factory.mktemp("rows")
    return make_ground_truth(root), label_file(root)


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def test_cliplabel_row(images, tmp_path):
    """in100-int-cliplabel: zero-shot labels (open_clip; tiny here) -> balance -> CE training."""
    stage, labels = images
    _janus(
        "label",
        stage,
        "--out",
        tmp_path / "cliplabel",
        "--model",
        "open_clip:tiny",
        "--pretrained",
        "none",
        "--prompts",
        "single",
        "--labels",
        labels,
        "--truth-col",
        "label",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    _janus(
        "balance",
        f"name=in100,images={stage},match={tmp_path / 'cliplabel'},kind=imagenet",
        "--labels",
        labels,
        "--out",
        tmp_path / "ds",
        "--val-fraction",
        "0",
    )
    rows = read_index(tmp_path / "ds" / "train").to_pylist()
    assert {r["label_source"] for r in rows} == {"zeroshot:tiny"}
    _janus("train", tmp_path / "ds" / "train", "--out", tmp_path / "run", *TRAIN)
    assert len(_history(tmp_path / "run")) == 1


def test_vl_gtcaps_and_tokscramble_rows(images, tmp_path):
    """in100-VL-gtcaps and in100-VL-gtcaps-tokscramble: captions from the labels, CLIP loss."""
    stage, labels = images
    _janus(
        "balance",
        f"name=in100,images={stage},labels=ground_truth,kind=imagenet",
        "--caption",
        "gtcaps",
        "--labels",
        labels,
        "--out",
        tmp_path / "ds",
        "--val-fraction",
        "0",
    )
    captions = {r["caption"] for r in read_index(tmp_path / "ds" / "train").to_pylist()}
    assert captions == {
        "a photo of a great white shark.",
        "a photo of a stingray.",
        "a photo of a hen.",
        "a photo of a junco.",
    }
    assert json.loads((tmp_path / "ds" / "train" / "sizes.json").read_text())  # open_clip's trainer reads it
    _janus("train", tmp_path / "ds" / "train", "--out", tmp_path / "vl", "--loss", "vl", *TRAIN)
    _janus(
        "train",
        tmp_path / "ds" / "train",
        "--out",
        tmp_path / "scramble",
        "--loss",
        "vl",
        "--text-transform",
        "scramble",
        *TRAIN,
    )
    assert len(_history(tmp_path / "vl")) == len(_history(tmp_path / "scramble")) == 1


def test_jpeg10_row(images, tmp_path):
    """in100-int-jpeg10: ground-truth labels, images re-encoded at JPEG quality 10 while training."""
    stage, labels = images
    _janus(
        "balance",
        f"name=in100,images={stage},labels=ground_truth,kind=imagenet",
        "--labels",
        labels,
        "--out",
        tmp_path / "ds",
        "--val-fraction",
        "0",
    )
    _janus("train", tmp_path / "ds" / "train", "--out", tmp_path / "run", "--jpeg-quality", "10", *TRAIN)
    manifest = json.loads((tmp_path / "run" / "_manifest.json").read_text())
    assert manifest["config"]["jpeg_quality"] == 10


def test_multi_label_ce_on_mc_labels_row(images, tmp_path):
    """Multi-label CE: janus match --strategy mc -> balance (labels member) -> train --multi-label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stage, labels = images
    names = {2: "great white shark", 6: "stingray", 8: "hen", 13: "junco"}
    keys = [r["key"] for r in read_index(stage).to_pylist()]
    text = [f"a {names[int(k.split('-')[1])]}" + (" beside a junco" if i % 2 else "") for i, k in enumerate(keys)]
    pq.write_table(pa.table({"key": keys, "TEXT": text}), tmp_path / "captions.parquet")
    _janus(
        "match",
        tmp_path / "captions.parquet",
        "--out",
        tmp_path / "mc",
        "--strategy",
        "mc",
        "--labels",
        labels,
        "--classnames",
        "default",
    )
    _janus(
        "balance",
        f"name=in100,images={stage},match={tmp_path / 'mc'},kind=imagenet",
        "--labels",
        labels,
        "--out",
        tmp_path / "ds",
        "--val-fraction",
        "0",
    )
    rows = read_index(tmp_path / "ds" / "train").to_pylist()
    assert {r["label_source"] for r in rows} == {"mc"}
    assert any(r["labels"] == [r["label"], 13] for r in rows) and any(r["labels"] == [r["label"]] for r in rows)
    _janus("train", tmp_path / "ds" / "train", "--out", tmp_path / "run", "--multi-label", *TRAIN)
    assert json.loads((tmp_path / "run" / "_manifest.json").read_text())["config"]["multi_label"] is True
