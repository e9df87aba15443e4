"""``janus label`` outputs as balance sources (the paper's cliplabel / swinlabel rows, issue 14)."""

from __future__ import annotations

import pyarrow.parquet as pq
from balance_fixtures import label_file, make_ground_truth

from janus_build.balance import BalanceConfig, SourceSpec, balance
from janus_build.core.shards import read_index
from janus_build.label.config import LabelConfig
from janus_build.label.run import run as run_label
from janus_build.progress import NULL_PROGRESS


def test_a_label_output_is_a_source_with_the_models_label_source(tmp_path):
    images = make_ground_truth(tmp_path)
    labels = label_file(tmp_path)
    label_dir = tmp_path / "cliplabel"
    config = LabelConfig(
        stage_dir=images,
        out=label_dir,
        model="open_clip:tiny",
        pretrained="none",
        prompts="single",
        labels=str(labels),
        truth_col="label",
        workers=0,
        device="cpu",
    )
    run_label(config, NULL_PROGRESS)
    shards = sorted(label_dir.glob("*.parquet"))
    assert len(shards) == 3  # one label shard per image shard
    predicted = {r["key"]: r["label"] for p in shards for r in pq.read_table(p).to_pylist()}
    truth = {r["key"]: r["label"] for r in read_index(images).to_pylist()}
    source = SourceSpec.parse(f"name=in100,images={images},match={label_dir},kind=imagenet,caption=gtcaps")
    out = tmp_path / "out"
    balance(BalanceConfig(out=str(out), sources=(source,), labels=str(labels), val_fraction=0.0))
    rows = read_index(out / "train").to_pylist()
    assert len(rows) == len(truth)
    assert {r["label_source"] for r in rows} == {"zeroshot:tiny"}
    # the model's labels, not the ground truth, are the samples' labels (and their gtcaps)
    assert all(r["label"] == predicted[r["source_key"]] for r in rows)
    names = {2: "great white shark", 6: "stingray", 8: "hen", 13: "junco"}
    assert all(r["caption"] == f"a photo of a {names[r['label']]}." for r in rows)
    assert sum(predicted[k] != truth[k] for k in truth) > 0  # a random tiny model: labels differ from truth
