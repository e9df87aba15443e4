"""janus import imagenet-captions: the published JSON joined to ImageNet train -> match -> balance."""

from __future__ import annotations

import json
import random

import pytest
from published import caption_record, write_imagenet_captions
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.keys import path_key
from janus_build.core.shards import read_index
from janus_build.demo.images import class_image
from janus_build.errors import InputError
from janus_build.importers import FoldersImportConfig, ImagenetCaptionsConfig
from janus_build.importers.folders import import_folders
from janus_build.importers.imagenet_captions import import_imagenet_captions
from janus_build.labels import load_label_set

IN100 = load_label_set("in100")
LION, SHARK, GOOSE = 291, 2, 99
TENCH = "n01440764"


@pytest.fixture()
def train(tmp_path):
    """ImageNet train for three IN100 classes (and tench) with four images each."""
    root = tmp_path / "train"
    for class_id in (LION, SHARK, GOOSE):
        wnid = IN100.wnids[class_id]
        (root / wnid).mkdir(parents=True)
        for i in range(4):
            (root / wnid / f"{wnid}_{i}.JPEG").write_bytes(class_image(class_id, i, 16))
    (root / TENCH).mkdir()
    (root / TENCH / f"{TENCH}_0.JPEG").write_bytes(class_image(0, 0, 16))
    return root


def _records() -> list[dict]:
    lion, shark, goose = (IN100.wnids[c] for c in (LION, SHARK, GOOSE))
    records = [
        caption_record(lion, f"{lion}_0.JPEG", "Lion at dawn", ["lion", "serengeti"], "A male lion &amp; cubs"),
        caption_record(lion, f"{lion}_1.JPEG", "Löwe im Zoo", ["zoo", "löwe"], '<a href="http://x">my site</a>'),
        caption_record(lion, f"{lion}_2.JPEG", "", [], ""),  # empty fields
        caption_record(shark, f"{shark}_0.JPEG", "Great white shark", ["ocean"], "Shark week"),
        caption_record(shark, f"{shark}_1.JPEG", "Jaws", ["great white shark"], ""),
        caption_record(shark, f"{shark}_9.JPEG", "a missing file", ["shark"], ""),  # caption without image
        caption_record(goose, f"{goose}_0.JPEG", "Canada goose", ["bird"], "honk"),
        caption_record(goose, f"{goose}_1.JPEG", "Gänse 🪿", ["goose"], 'a "quoted" word'),
        caption_record(TENCH, f"{TENCH}_0.JPEG", "A tench", ["fish"], ""),  # not an IN100 class
    ]
    rng = random.Random(0)
    shuffled = []
    for record in records:  # keys in any order
        items = list(record.items())
        rng.shuffle(items)
        shuffled.append(dict(items))
    return shuffled


@pytest.mark.parametrize("zipped", [False, True])
def test_join_text_labels_and_reports(tmp_path, train, zipped):
    name = "imagenet_captions.zip" if zipped else "imagenet_captions.json"
    captions = write_imagenet_captions(tmp_path / name, _records(), zipped=zipped)
    if not zipped:
        assert "\\u00f6" in captions.read_text()  # non-ASCII as \u escapes, as published
    config = ImagenetCaptionsConfig(captions=captions, root=train, out=tmp_path / "out", shard_size=3, workers=2)
    summary = import_imagenet_captions(config)
    rows = {r["source_id"]: r for r in read_index(tmp_path / "out").to_pylist()}
    lion = IN100.wnids[LION]
    assert len(rows) == 7 and summary["successes"] == 7 and summary["shards"] == 3
    first = rows[f"{lion}/{lion}_0.JPEG"]
    assert first["key"] == path_key("imagenet", f"{lion}/{lion}_0.JPEG") and first["label"] == LION
    assert first["title"] == "Lion at dawn" and first["tags"] == "lion, serengeti"
    assert first["description"] == "A male lion & cubs" and first["label_source"] == "ground_truth"
    assert first["source"] == "imagenet" and first["license"] == "ImageNet terms of access" and first["wnid"] == lion
    assert rows[f"{lion}/{lion}_1.JPEG"]["title"] == "Löwe im Zoo"
    assert rows[f"{lion}/{lion}_1.JPEG"]["description"] == "my site"
    assert rows[f"{lion}/{lion}_2.JPEG"]["title"] == "" and rows[f"{lion}/{lion}_2.JPEG"]["tags"] == ""
    goose = IN100.wnids[GOOSE]
    assert rows[f"{goose}/{goose}_1.JPEG"]["title"] == "Gänse 🪿"
    assert summary["captions"] == 9 and summary["captions_of_other_classes"] == 1
    assert summary["captions_without_images"] == 1
    assert summary["examples"]["captions_without_images"] == [f"{IN100.wnids[SHARK]}/{IN100.wnids[SHARK]}_9.JPEG"]
    assert summary["images_without_captions"] == 5  # lion_3, shark_2, shark_3, goose_2, goose_3


def test_same_keys_as_a_folder_import_and_resume(tmp_path, train):
    captions = write_imagenet_captions(tmp_path / "imagenet_captions.json", _records())
    config = ImagenetCaptionsConfig(captions=captions, root=train, out=tmp_path / "out", shard_size=3, workers=2)
    import_imagenet_captions(config)
    import_folders(FoldersImportConfig(root=train, out=tmp_path / "folders", layout="wnid", labels="in100"))
    folder_keys = set(read_index(tmp_path / "folders").column("key").to_pylist())
    assert set(read_index(tmp_path / "out").column("key").to_pylist()) <= folder_keys
    (tmp_path / "out" / "_stats" / "00001.json").unlink()
    again = import_imagenet_captions(config)
    assert again["shards_written"] == 1 and again["successes"] == 7
    (tmp_path / "broken.json").write_text('[{"filename": "a.JPEG", "wnid": "n01440764"}, {"filename": ')
    with pytest.raises(InputError, match="broken.json"):
        import_imagenet_captions(
            ImagenetCaptionsConfig(captions=tmp_path / "broken.json", root=train, out=tmp_path / "b")
        )


def test_through_match_and_balance(tmp_path, train):
    captions = write_imagenet_captions(tmp_path / "imagenet_captions.json", _records())
    stage = tmp_path / "in100-images"
    import_imagenet_captions(ImagenetCaptionsConfig(captions=captions, root=train, out=stage))
    runner = CliRunner()
    args = ["match", str(stage), "--out", str(tmp_path / "m"), "--labels", "in100", "--truth-col", "label"]
    result = runner.invoke(app, [*args, "--text-col", "title", "--text-col", "tags", "--text-col", "description"])
    assert result.exit_code == 0, result.output
    stats = json.loads(next(p for p in (tmp_path / "m").glob("*stats.json")).read_text())
    assert stats["rows"] == 7 and stats["labelled"] >= 5 and stats["label_accuracy"] == 1.0
    spec = f"name=in100,images={stage},labels=ground_truth,kind=imagenet"
    result = runner.invoke(
        app, ["balance", spec, "--labels", "in100", "--out", str(tmp_path / "bal"), "--val-fraction", "0"]
    )
    assert result.exit_code == 0, result.output
    balanced = {r["source_id"]: r for r in read_index(tmp_path / "bal" / "train").to_pylist()}
    lion = IN100.wnids[LION]
    row = balanced[f"{lion}/{lion}_0.JPEG"]
    assert row["label"] == LION and row["title"] == "Lion at dawn" and row["license"] == "ImageNet terms of access"
    assert row["source"] == "imagenet" and row["label_source"] == "ground_truth" and len(balanced) == 7
