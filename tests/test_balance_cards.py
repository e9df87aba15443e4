"""janus balance cards: escaped user text, the Hugging Face YAML header, a Croissant file mlcroissant
validates and reads, contamination figures and the command that built the dataset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.shards import ImageShardWriter, read_index
from janus_build.demo.images import class_image

HOSTILE_TITLE = '<script>alert("x")</script> [click](javascript:alert(1)) *bold* | pipe'
HOSTILE_OWNER = "<img src=x onerror=alert(1)>"
HOSTILE_CLASS = "lion <b>king</b> [Panthera leo]"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cards")
    labels = root / "labels.tsv"
    labels.write_text(f"class_id\tname\n2\t{HOSTILE_CLASS}\n6\ttiger\n")
    with ImageShardWriter(root / "flickr", "00000") as writer:
        for i in range(12):
            meta = {
                "label": 2 if i < 8 else 6,
                "photo_id": str(100 + i),
                "title": HOSTILE_TITLE if i == 0 else f"photo {i}",
                "owner": HOSTILE_OWNER if i == 0 else f"owner{i}",
                "license": "Attribution License",
                "url": f"https://live.staticflickr.com/{i}.jpg",
            }
            writer.write(f"flickr-{100 + i}", class_image(meta["label"], i, 24), meta)
    contamination = root / "_contamination.json"
    contamination.write_text(
        json.dumps(
            {
                "method": "phash, hamming <= 6",
                "eval_sets": {
                    "imagenet-v2": {"checked": 12, "flagged": 0},
                    "imagenet-r": {"checked": 12, "flagged": 1},
                },
            }
        )
    )
    out = root / "janus_demo"
    argv = [
        "balance",
        f"name=flickr,images={root / 'flickr'},labels=human,kind=flickr",
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--val-fraction",
        "0.25",
        "--contamination",
        str(contamination),
    ]
    old = sys.argv
    sys.argv = ["janus", *argv]  # what a shell would pass; CliRunner leaves pytest's argv
    try:
        result = CliRunner().invoke(app, argv)
    finally:
        sys.argv = old
    assert result.exit_code == 0, result.output
    return out


def _header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_card_escapes_titles_owners_and_class_names(built):
    card = (built / "README.md").read_text()
    body = card.split("---\n", 2)[2]
    for raw in ("<script>", "<img", "<b>", "[click](javascript:", "[Panthera leo]"):
        assert raw not in body, raw
    assert "&lt;script&gt;" in body and "&lt;img src=x onerror=alert\\(1\\)&gt;" in body
    assert "lion &lt;b&gt;king&lt;/b&gt; \\[Panthera leo\\]" in body
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in body and "\\*bold\\* \\| pipe" in body
    # the raw text stays exact in the machine-readable files
    rows = read_index(built / "train").to_pylist() + read_index(built / "val").to_pylist()
    assert HOSTILE_TITLE in {r["title"] for r in rows}
    assert HOSTILE_TITLE in (built / "ATTRIBUTION.tsv").read_text()


def test_hugging_face_header(built):
    header = _header((built / "README.md").read_text())
    stats = json.loads((built / "stats.json").read_text())
    assert header["license"] == "cc-by-2.0"  # every sample: Flickr's "Attribution License"
    assert header["task_categories"] == ["image-classification", "zero-shot-image-classification"]
    assert header["size_categories"] == ["n<1K"]
    files = {f["split"]: f["path"] for f in header["configs"][0]["data_files"]}
    assert files == {"train": "train/*.tar", "validation": "val/*.tar"}
    features = {f["name"]: f for f in header["dataset_info"]["features"]}
    assert features["cls"]["dtype"]["class_label"]["names"] == {"2": HOSTILE_CLASS, "6": "tiger"}
    splits = {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]}
    assert splits == {"train": stats["samples"]["train"], "validation": stats["samples"]["val"]}
    assert splits["train"] + splits["validation"] == 12


def test_card_and_stats_carry_contamination_label_sources_and_the_command(built):
    card = (built / "README.md").read_text()
    stats = json.loads((built / "stats.json").read_text())
    assert stats["contamination"]["report"]["eval_sets"]["imagenet-r"]["flagged"] == 1
    assert "| imagenet-r | 12 | 1 |" in card and "| imagenet-v2 | 12 | 0 |" in card
    assert stats["provenance"]["command"][:2] == ["janus", "balance"]
    assert "--contamination" in card and "janus balance" in card and stats["provenance"]["janus_build_version"]
    assert "| `flickr` | `human` | 12 | not measured |" in card


def test_croissant_file_validates_and_reads_with_mlcroissant(built):
    mlc = pytest.importorskip("mlcroissant")
    path = built / "croissant.json"
    dataset = mlc.Dataset(jsonld=str(path))  # raises ValidationError on an invalid file
    stats = json.loads((built / "stats.json").read_text())
    train = list(dataset.records(record_set="train"))
    assert len(train) == stats["samples"]["train"]
    keys = {r["train/key"].decode() if isinstance(r["train/key"], bytes) else r["train/key"] for r in train}
    assert keys == {r["key"] for r in read_index(built / "train").to_pylist()}
    classes = {int(r["classes/class_id"]): int(r["classes/samples"]) for r in dataset.records(record_set="classes")}
    assert classes == {2: 8, 6: 4}
    contamination = list(dataset.records(record_set="contamination"))
    assert len(contamination) == 2
    doc = json.loads(path.read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0" and "rai:dataCollection" in doc
