"""janus import openimages: Google's CSVs and Localized Narratives -> OI100 (metadata or images)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from published import oi_image, write_narratives, write_oi_classes, write_oi_images, write_oi_labels
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.core.shards import read_index
from janus_build.core.stage import ShardDir
from janus_build.demo.images import class_image
from janus_build.errors import InputError
from janus_build.importers import OpenImagesConfig, UrlListConfig
from janus_build.importers.openimages import import_openimages, load_mapping
from janus_build.importers.urllist import write_url_list
from janus_build.labels import load_label_set

LION, SHARK, GOOSE, PIZZA = "/m/096mb", "/m/0by7c", "/m/0dbvp", "/m/0663v"
TENCH = "/m/066gdc"  # an ImageNet class outside IN100
IDS = [f"{n:016x}" for n in range(0xA0, 0xAC)]


@pytest.fixture()
def release(tmp_path):
    """Open Images V7-style files for a dozen images."""
    images = [
        oi_image(IDS[0], "Lion &amp; cub", author="Ana Müller"),
        oi_image(IDS[1], "Shark!", License="https://creativecommons.org/licenses/by-sa/2.0/"),
        oi_image(IDS[2], "Goose, gander", author=""),
        oi_image(IDS[3], "Pizza night"),
        oi_image(IDS[4], "lion and shark poster"),  # two classes: ambiguous
        oi_image(IDS[5], "tench"),  # maps outside IN100
        oi_image(IDS[6], "sunset"),  # no mapped label
        oi_image(IDS[7], "negated lion"),  # Confidence 0 only
        oi_image(IDS[8], ""),  # empty title
    ]
    labels = [
        (IDS[0], LION, 1),
        (IDS[0], "/m/01g317", 1),  # Person: not mapped
        (IDS[1], SHARK, 1),
        (IDS[2], GOOSE, 1),
        (IDS[2], LION, 0),  # a negative label does not count
        (IDS[3], PIZZA, 1),
        (IDS[4], LION, 1),
        (IDS[4], SHARK, 1),
        (IDS[5], TENCH, 1),
        (IDS[7], LION, 0),
        (IDS[8], GOOSE, 1),
        ("ffffffffffffffff", LION, 1),  # labelled but not in the image list
    ]
    narratives = [
        (IDS[0], "In this image we can see a lion lying on the grass."),
        (IDS[3], "In this picture there is a pizza on a plate."),
        ("0000000000000001", "An image that is not in the list."),
        (IDS[6], "A sunset over the sea."),  # not a selected image
    ]
    return {
        "images_csv": write_oi_images(tmp_path / "oidv6-train-images-with-labels-with-rotation.csv", images),
        "labels_csv": write_oi_labels(tmp_path / "oidv7-train-annotations-human-imagelabels.csv", labels),
        "machine": write_oi_labels(tmp_path / "machine.csv", [(IDS[6], LION, 1)], source="machine"),
        "classes_csv": write_oi_classes(
            tmp_path / "oidv7-class-descriptions.csv", [(LION, "Lion"), (SHARK, "Shark"), (GOOSE, "Goose")]
        ),
        "narratives": (write_narratives(tmp_path / "open_images_train_v6_captions.jsonl", narratives),),
    }


def _config(release: dict, **kw) -> OpenImagesConfig:
    return OpenImagesConfig(**{k: v for k, v in {**release, **kw}.items() if k != "machine"})


def _rows(out) -> dict[str, dict]:
    shards = ShardDir(out)
    return {r["source_id"]: r for n in shards.done_shards() for r in pq.read_table(shards.shard_path(n)).to_pylist()}


def test_labels_text_and_provenance(tmp_path, release):
    summary = import_openimages(_config(release, out=tmp_path / "oi"))
    rows = _rows(tmp_path / "oi")
    assert set(rows) == {IDS[0], IDS[1], IDS[2], IDS[3], IDS[8]}
    lion = rows[IDS[0]]
    assert lion["key"] == f"openimages-{IDS[0]}" and lion["label"] == 291 and lion["labels"] == [291]
    assert lion["label_source"] == "mapped" and lion["source"] == "openimages"
    assert lion["title"] == "Lion & cub" and lion["owner"] == "Ana Müller" and lion["license"] == "CC BY 2.0"
    assert lion["annot_caption"] == "In this image we can see a lion lying on the grass."
    assert lion["label_names"] == [LION] and lion["label_display_names"] == ["Lion"]
    assert lion["url"].endswith(f"{IDS[0]}_o.jpg") and lion["landing_url"].startswith("https://www.flickr.com/")
    assert rows[IDS[1]]["license"] == "CC BY-SA 2.0" and rows[IDS[2]]["label"] == 99 and rows[IDS[2]]["owner"] is None
    assert rows[IDS[3]]["label"] == 963 and rows[IDS[8]]["title"] == "" and rows[IDS[8]]["annot_caption"] is None
    assert summary["ambiguous_images"] == 1 and summary["ambiguous_examples"] == [IDS[4]]
    assert summary["labelled_images_not_in_list"] == 1 and summary["mapped_labels_not_positive"] == 2
    assert summary["narratives_for_other_images"] == 2 and summary["narratives_attached"] == 2
    machine = import_openimages(_config(release, out=tmp_path / "m", labels_csv=release["machine"]))
    assert machine["machine_labels_skipped"] == 1 and machine["rows"] == 0
    kept = import_openimages(_config(release, out=tmp_path / "amb", keep_ambiguous=True))
    both = _rows(tmp_path / "amb")[IDS[4]]
    assert both["label"] == -1 and both["labels"] == [2, 291] and kept["rows"] == 6


def test_own_mapping_header_less_classes_and_bad_files(tmp_path, release):
    mapping = tmp_path / "mine.tsv"
    mapping.write_text(f"# my classes\nLabelName\tclass_id\n{TENCH}\t0\n{PIZZA}\t963\n")
    old_classes = write_oi_classes(tmp_path / "class-descriptions.csv", [(TENCH, "Tench")], header=False)
    config = {**release, "classes_csv": old_classes}
    import_openimages(_config(config, out=tmp_path / "in1k", mapping=mapping, labels="in1k"))
    rows = _rows(tmp_path / "in1k")
    assert {k: r["label"] for k, r in rows.items()} == {IDS[3]: 963, IDS[5]: 0}
    assert rows[IDS[5]]["label_display_names"] == ["Tench"]
    assert len(load_mapping(None, set(load_label_set("in100").ids))) >= 100  # every IN100 class has a label
    bad = write_oi_labels(tmp_path / "bad.csv", [])
    bad.write_text("ImageID,LabelName\n")
    with pytest.raises(InputError, match=r"--labels-csv .*missing column\(s\) Confidence"):
        import_openimages(_config(release, out=tmp_path / "x", labels_csv=bad))


def test_local_images_to_image_stage_then_balance(tmp_path, release):
    images = tmp_path / "train"
    images.mkdir()
    for n, class_id in ((0, 291), (1, 2), (3, 963), (8, 99)):  # IDS[2] was never downloaded
        folder = images / "train_0" if n == 8 else images  # an extracted train_0.tar.gz too
        folder.mkdir(exist_ok=True)
        (folder / f"{IDS[n]}.jpg").write_bytes(class_image(class_id, n, 16))
    summary = import_openimages(_config(release, out=tmp_path / "oi100", image_dir=images, workers=2))
    assert summary["successes"] == 4 and summary["failures"] == {"missing_image": 1}
    spec = f"name=oi100,images={tmp_path / 'oi100'},labels=mapped,kind=openimages,caption=annot_caption"
    args = ["balance", spec, "--labels", "in100", "--out", str(tmp_path / "bal"), "--val-fraction", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    balanced = {r["source_id"]: r for r in read_index(tmp_path / "bal" / "train").to_pylist()}
    assert set(balanced) == {IDS[0], IDS[1], IDS[3], IDS[8]}
    lion = balanced[IDS[0]]
    assert lion["label"] == 291 and lion["label_source"] == "mapped" and lion["license"] == "CC BY 2.0"
    assert lion["owner"] == "Ana Müller" and lion["title"] == "Lion & cub" and lion["source"] == "openimages"
    assert lion["caption"] == "In this image we can see a lion lying on the grass."


def test_metadata_stage_to_url_list(tmp_path, release):
    import_openimages(_config(release, out=tmp_path / "oi"))
    result = write_url_list(UrlListConfig(stage_dir=tmp_path / "oi", out=tmp_path / "urls.parquet"))
    table = pq.read_table(tmp_path / "urls.parquet")
    assert result["written"] == 5 and table.column_names[:2] == ["janus_key", "source"]
    assert {"url", "label", "license", "owner", "title", "annot_caption"} <= set(table.column_names)


def test_cli_bad_csv_is_one_line_and_exit_2(tmp_path, release):
    import subprocess
    import sys

    bad = tmp_path / "labels.csv"
    bad.write_text("ImageID,LabelName\nabc,/m/096mb\n")
    args = ["import", "openimages", "--images-csv", str(release["images_csv"]), "--labels-csv", str(bad)]
    result = subprocess.run(
        [sys.executable, "-m", "janus_build", *args, "--out", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "--labels-csv" in result.stderr and "Confidence" in result.stderr and "Traceback" not in result.stderr
