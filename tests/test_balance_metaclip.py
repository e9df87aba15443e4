"""janus balance --balance metaclip: per-class counts follow t / max(count, t) on a skewed source."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.balance import BalanceConfig, SourceSpec, balance
from janus_build.core.shards import ImageShardWriter, read_index
from janus_build.demo.images import class_image
from janus_build.errors import ConfigError

SKEWED = {2: 400, 6: 120, 8: 30, 13: 5}  # single-label samples per class
MULTI = 10  # samples labelled 2 (the head class) that also matched 13 (a tail class)
T = 50


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("metaclip")
    labels = root / "labels.tsv"
    labels.write_text("class_id\tname\n2\tshark\n6\tstingray\n8\then\n13\tjunco\n")
    rows = [(f"s-{c}-{i}", c, [c]) for c, n in SKEWED.items() for i in range(n)]
    rows += [(f"m-{i}", 2, [2, 13]) for i in range(MULTI)]
    with ImageShardWriter(root / "images", "00000") as writer:
        for i, (key, label, _labels) in enumerate(rows):
            writer.write(key, class_image(label, i, 8), {})
    match = root / "match"
    match.mkdir()
    table = pa.table(
        {
            "key": [r[0] for r in rows],
            "label": pa.array([r[1] for r in rows], pa.int32()),
            "labels": pa.array([r[2] for r in rows], pa.list_(pa.int32())),
        }
    )
    pq.write_table(table, match / "00000.parquet")
    (match / "_manifest.json").write_text(json.dumps({"stage": "match", "config": {"strategy": "mc"}}))
    return root / "images", match, labels


def _run(source, out: Path, seed: int) -> list[dict]:
    images, match, labels = source
    balance(
        BalanceConfig(
            out=str(out),
            sources=(SourceSpec.parse(f"name=web,images={images},match={match}"),),
            labels=str(labels),
            balance="metaclip",
            max_per_class=T,
            seed=seed,
            val_fraction=0.0,
            dedup=("key",),
        )
    )
    return read_index(out / "train").to_pylist()


def test_per_class_counts_follow_the_formula_and_the_seed(source, tmp_path):
    rows = _run(source, tmp_path / "a", seed=0)
    single = Counter(r["label"] for r in rows if r["key"].startswith("s-"))
    entries = dict(SKEWED)
    entries[2] += MULTI  # a sample counts in every class it matched
    entries[13] += MULTI
    for c, n in SKEWED.items():
        p = T / max(entries[c], T)
        if p == 1:  # a class under t keeps every sample
            assert single[c] == n, c
        else:  # binomial: within 4 standard deviations of n * p
            assert abs(single[c] - n * p) <= 4 * math.sqrt(n * p * (1 - p)), (c, single[c], n * p)
    # the samples that also matched the tail class 13 (15 entries <= t) are all kept by it
    assert sum(r["key"].startswith("m-") for r in rows) == MULTI
    again = _run(source, tmp_path / "b", seed=0)
    other = _run(source, tmp_path / "c", seed=1)
    keys = lambda rs: sorted(r["key"] for r in rs)  # noqa: E731
    assert keys(rows) == keys(again) and keys(rows) != keys(other)
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert stats["metaclip"]["t"] == T and stats["metaclip"]["entries_per_class"] == [entries[c] for c in SKEWED]


def test_metaclip_needs_a_threshold(source, tmp_path):
    images, match, labels = source
    with pytest.raises(ConfigError, match="--balance metaclip needs --max-per-class"):
        BalanceConfig(
            out=str(tmp_path / "o"),
            sources=(SourceSpec.parse(f"name=web,images={images},match={match}"),),
            balance="metaclip",
        )
