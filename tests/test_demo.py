"""janus demo end to end: every stage reads what the previous one wrote; assert on the outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest


def read_dir(directory, columns=None):
    import pyarrow as pa

    return pa.concat_tables(pq.read_table(p, columns=columns) for p in sorted(directory.glob("[!.]*.parquet")))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    done = subprocess.run(
        [sys.executable, "-m", "janus_build", "demo", "--out", str(out), "--per-class", "24", "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_prints_the_robustness_table_and_where_outputs_live(demo):
    out, stdout = demo
    assert "Robustness of a small CNN trained on the 1x budget" in stdout
    assert "average robustness" in stdout and "effective robustness ratio" in stdout
    assert str(out / "janus-2x") in stdout.replace("\n", "")


def test_fetch_outputs_carry_licence_and_owner(demo):
    out, _ = demo
    report = json.loads((out / "flickr" / "report.json").read_text())
    assert set(report["classes"]) == {"291", "99", "105", "130"}
    for figures in report["classes"].values():
        assert figures["fetched"] == 24 and figures["downloaded"] == 24 and figures["available"] >= 24
    meta = read_dir(out / "flickr" / "metadata").to_pylist()
    assert all(r["license"] and r["owner"] and r["url"].startswith("http://127.0.0.1") for r in meta)


def test_tag_export_matches_the_generated_truth(demo):
    from janus_build.demo import DemoConfig, make_fake_flickr

    out, _ = demo
    truth = make_fake_flickr(DemoConfig(per_class=24)).truth()  # the corpus is deterministic
    tags = pq.read_table(out / "flickr-tags.parquet").to_pylist()
    downloaded = read_dir(out / "flickr" / "images", ["key", "status"]).to_pylist()
    assert {t["key"] for t in tags} == {r["key"] for r in downloaded if r["status"] == "success"}
    assert {t["annotator"] for t in tags} == {"oracle"}
    for tag in tags:
        assert tag["decision"] == ("in" if truth[tag["key"]] else "out"), tag
    decisions = [t["decision"] for t in tags]
    assert 0 < decisions.count("out") < decisions.count("in")  # about 20% confusers


def test_captions_match_keys_and_have_all_columns(demo):
    out, _ = demo
    captions = read_dir(out / "flickr-captions").to_pylist()
    keys = {
        r["key"] for r in read_dir(out / "flickr" / "images", ["key", "status"]).to_pylist() if r["status"] == "success"
    }
    assert {c["key"] for c in captions} == keys
    for c in captions:
        assert c["status"] == "success" and c["caption_blip"] and c["prose_caption"]


def test_match_stats_have_label_quality(demo):
    out, _ = demo
    stats = json.loads((out / "laion-match" / "_stats.json").read_text())
    assert stats["rows"] == 271 and 0 < stats["labelled"] < 271
    assert 0 < stats["label_accuracy"] <= 1 and "dataset_utilization" in stats


def test_balanced_shards_read_back_with_provenance(demo):
    out, _ = demo
    import webdataset as wds

    for budget, expected in (("1x", 48), ("2x", 96)):  # 1x = 4 classes x 24 // 2 ground truth
        tars = sorted(str(p) for p in (out / f"janus-{budget}" / "train").glob("*.tar"))
        samples = list(wds.WebDataset(tars, shardshuffle=False).decode())
        assert len(samples) == expected
        classes = {int(s["cls"]) for s in samples}
        assert classes == {291, 99, 105, 130}
        for sample in samples[:50]:
            meta = sample["json"]
            assert meta["source"] in ("imagenet", "flickr", "laion") and meta["label_source"] and meta["source_id"]
            if meta["source"] == "flickr":  # CC licences need attribution: licence, owner and URL travel
                assert meta["license"].startswith(("CC", "Public", "No known")) and meta["owner"] and meta["url"]
    card = (out / "janus-2x" / "README.md").read_text()
    assert "Licences" in card and "ground_truth" in card and "tagged" in card


def test_metrics_json_complete(demo):
    out, _ = demo
    for budget in ("1x", "2x"):
        metrics = json.loads((out / f"metrics-{budget}.json").read_text())
        assert set(metrics["shifts"]) == {"imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a"}
        assert metrics["average_robustness_complete"] is True
        shifts = [metrics["shifts"][s]["top1"] for s in ("imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")]
        assert metrics["average_robustness"] == pytest.approx(sum(shifts) / 4)
        assert metrics["effective_robustness_ratio"] == pytest.approx(
            metrics["average_robustness"] / metrics["val_top1"]
        )
        assert (out / f"train-{budget}" / "checkpoints" / "last.pt").is_file()


# --- the data contract, checked on every stage output the demo wrote --------------------------
CONTRACT = [
    ("flickr/metadata", "FETCH_METADATA", False),
    ("flickr/images", "IMAGE_INDEX", True),
    ("flickr-captions", "CAPTIONS", False),
    ("laion-match", "MATCH_ADDED", False),
    ("imagenet-like", "IMAGE_INDEX", True),
    ("laion-images", "IMAGE_INDEX", True),
    ("janus-1x/train", "BALANCE_INDEX", True),
    ("janus-2x/train", "BALANCE_INDEX", True),
]


def _schema(name):
    from janus_build import schemas
    from janus_build.core import shards

    return getattr(shards, name) if name == "IMAGE_INDEX" else getattr(schemas, name)


@pytest.mark.parametrize(("relative", "schema_name", "has_tars"), CONTRACT, ids=[c[0] for c in CONTRACT])
def test_every_stage_output_keeps_the_contract(demo, relative, schema_name, has_tars):
    import pyarrow.dataset as ds

    from janus_build import schemas
    from janus_build.core.stage import ShardDir

    out, _ = demo
    directory = out / relative
    shard_dir = ShardDir(directory)
    done = shard_dir.done_shards()
    assert done, f"{relative}: no finished shard"
    for name in done:
        marker = shard_dir.marker_path(name).stat().st_mtime_ns
        files = [p for p in directory.iterdir() if p.name.split(".")[0] == name]
        assert files and all(p.stat().st_mtime_ns <= marker for p in files), f"{relative}/{name}: marker not last"
        table = pq.read_table(directory / f"{name}.parquet")
        schemas.validate(table, _schema(schema_name), f"{relative}/{name}")  # raises on a broken contract
        assert len(set(table.column("key").to_pylist())) == table.num_rows
    leftovers = [p.name for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not leftovers
    if not has_tars:  # a parquet shard directory opens as-is
        rows = sum(pq.read_metadata(directory / f"{n}.parquet").num_rows for n in done)
        assert ds.dataset(directory, format="parquet").count_rows() == rows


CROISSANT_RECORDS = (
    "import sys, mlcroissant as mlc\nprint(len(list(mlc.Dataset(jsonld=sys.argv[1]).records(record_set='train'))))\n"
)


def test_the_dataset_is_checked_for_contamination_and_carries_a_croissant_file(demo):
    out, stdout = demo
    found = json.loads((out / "dedup" / "_contamination.json").read_text())
    assert found["checked"] > 100 and found["contaminated"] == 0  # the demo's evaluation images are new images
    assert set(found["eval_sets"]) == {"imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a"}
    assert "0 near-copies" in stdout.replace("\n", " ")
    for budget in ("1x", "2x"):
        card = (out / f"janus-{budget}" / "README.md").read_text()
        assert card.startswith("---\n") and "## Evaluation-set contamination" in card
        # mlcroissant (absl) rewires logging in the process that imports it: validate in a child
        path = out / f"janus-{budget}" / "croissant.json"
        done = subprocess.run([sys.executable, "-c", CROISSANT_RECORDS, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]  # mlcroissant raises on an invalid file
        stats = json.loads((out / f"janus-{budget}" / "stats.json").read_text())
        assert int(done.stdout.split()[-1]) == stats["samples"]["train"] > 0
