"""janus balance, issues 11 and 12: distinct samples of unrelated sources are never merged, a
source row's provenance beats an importer's default, invalid images never reach the shards,
nonsense budgets are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from typer.testing import CliRunner

from janus_build.balance import BalanceConfig, SourceSpec, balance, parse_budget
from janus_build.cli import app
from janus_build.core.shards import ImageShardWriter, read_index
from janus_build.demo.images import class_image
from janus_build.errors import ConfigError, OutputError

LABELS = "class_id\tname\n2\tlion\n6\ttiger\n"


def _labels(tmp: Path) -> Path:
    path = tmp / "labels.tsv"
    path.write_text(LABELS)
    return path


def _folder_tree(root: Path, offset: int, duplicate_of: bytes | None = None) -> int:
    """``lion/lion_000.jpg`` ... and ``tiger/tiger_000.jpg`` ...: the same relative paths in every tree."""
    n = 0
    for class_id, name, count in ((2, "lion", 5), (6, "tiger", 3)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            (root / name / f"{name}_{i:03d}.jpg").write_bytes(class_image(class_id, offset + i, 24))
            n += 1
    if duplicate_of is not None:  # the same photo again, under another name: a true duplicate
        (root / "tiger" / "tiger_copy.jpg").write_bytes(duplicate_of)
        n += 1
    return n


def _import(tmp: Path, root: Path, out: Path, labels: Path) -> None:
    result = CliRunner().invoke(
        app, ["import", "folders", str(root), "--out", str(out), "--layout", "name", "--labels", str(labels)]
    )
    assert result.exit_code == 0, result.output


def _all_rows(out: Path) -> list[dict]:
    return [
        r
        for split in ("train", "val")
        if any((out / split).glob("*.parquet"))
        for r in read_index(out / split).to_pylist()
    ]


def test_two_folder_imports_sharing_relative_paths_keep_every_distinct_image(tmp_path):
    labels = _labels(tmp_path)
    first = _folder_tree(tmp_path / "a", 0)
    copy = (tmp_path / "a" / "lion" / "lion_000.jpg").read_bytes()
    second = _folder_tree(tmp_path / "b", 100, duplicate_of=copy)
    _import(tmp_path, tmp_path / "a", tmp_path / "ia", labels)
    _import(tmp_path, tmp_path / "b", tmp_path / "ib", labels)
    result = balance(
        BalanceConfig(
            out=str(tmp_path / "o"),
            sources=(
                SourceSpec.parse(f"name=mine,images={tmp_path / 'ia'},labels=human"),
                SourceSpec.parse(f"name=theirs,images={tmp_path / 'ib'},labels=human"),
            ),
            labels=str(labels),
            val_fraction=0.0,
        )
    )
    rows = _all_rows(tmp_path / "o")
    # 8 + 8 distinct images with the same relative paths are all kept; only the byte-identical copy goes
    assert len(rows) == first + second - 1 == 16
    assert result.stats["dedup"]["removed"] == {"key": 0, "id": 0, "url": 0, "hash": 1}
    assert len({r["key"] for r in rows}) == 16
    by_source = {(r["source_name"], r["source_key"]) for r in rows}
    assert len(by_source) == 16
    # keys that two image stages share are told apart by the source name; the source key is kept
    clash = [r for r in rows if r["key"] != r["source_key"]]
    assert clash and all(r["key"] == f"{r['source_name']}-{r['source_key']}" for r in clash)
    # the same stage given twice is the same samples: the key check still removes them
    again = balance(
        BalanceConfig(
            out=str(tmp_path / "p"),
            sources=(
                SourceSpec.parse(f"name=mine,images={tmp_path / 'ia'},labels=human"),
                SourceSpec.parse(f"name=again,images={tmp_path / 'ia'},labels=human"),
            ),
            labels=str(labels),
            val_fraction=0.0,
        )
    )
    assert again.stats["dedup"]["removed"]["key"] == first and sum(again.counts.values()) == first


def _laion(tmp: Path, row_licence: str, stage_columns: dict) -> tuple[Path, Path]:
    """A match output whose rows carry LAION's LICENSE, and an image stage whose importer wrote a default."""
    match_dir, images = tmp / "match", tmp / "images"
    match_dir.mkdir()
    rows = [
        {"key": f"laion-{i}", "URL": f"http://example.com/{i}.jpg", "TEXT": f"a lion {i}", "LICENSE": row_licence}
        for i in range(4)
    ]
    table = pa.Table.from_pylist(rows).append_column("label", pa.array([2] * 4, pa.int32()))
    pq.write_table(table, match_dir / "00000.parquet")
    (match_dir / "_manifest.json").write_text(json.dumps({"stage": "match", "config": {"strategy": "sc"}}))
    with ImageShardWriter(images, "00000") as writer:
        for i, row in enumerate(rows):
            writer.write(row["key"], class_image(2, i, 24), {"url": row["URL"], **stage_columns})
    return match_dir, images


def test_a_licence_in_the_source_row_beats_an_import_default(tmp_path):
    labels = _labels(tmp_path)
    match_dir, images = _laion(tmp_path, "CC BY 4.0", {"license": "unknown", "source": "laion"})
    (match_dir / "_stats.json").write_text(json.dumps({"rows": 4, "label_accuracy": 0.83}))  # janus match --truth-col
    out = tmp_path / "o"
    result = balance(
        BalanceConfig(
            out=str(out),
            sources=(SourceSpec.parse(f"name=laion,images={images},match={match_dir},kind=laion"),),
            labels=str(labels),
            val_fraction=0.0,
        )
    )
    rows = _all_rows(out)
    assert {r["license"] for r in rows} == {"CC BY 4.0"}
    assert len((out / "ATTRIBUTION.tsv").read_text().splitlines()) == 1 + 4  # every sample credited
    assert result.stats["label_accuracy"] == {"laion": 0.83}
    assert "| `laion` | `sc` | 4 | 0.83 |" in (out / "README.md").read_text()
    # the same within one index: an img2dataset column saved from the parquet beats the importer's default
    stage = tmp_path / "stage"
    with ImageShardWriter(stage, "00000") as writer:
        for i in range(3):
            writer.write(f"k{i}", class_image(2, i, 24), {"label": 2, "LICENSE": "CC BY 4.0", "license": "unknown"})
    balance(
        BalanceConfig(
            out=str(tmp_path / "p"),
            sources=(SourceSpec.parse(f"name=s,images={stage},labels=human"),),
            labels=str(labels),
            val_fraction=0.0,
        )
    )
    assert {r["license"] for r in _all_rows(tmp_path / "p")} == {"CC BY 4.0"}


def test_invalid_images_never_reach_the_shards_and_are_counted(tmp_path):
    labels = _labels(tmp_path)
    stage = tmp_path / "stage"
    with ImageShardWriter(stage, "00000") as writer:
        for i in range(4):
            writer.write(f"good-{i}", class_image(2, i, 24), {"label": 2})
        writer.write("random", bytes(range(256)) * 8, {"label": 2})  # a tar of random data named .jpg
        writer.write("fake-jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 500, {"label": 6})  # JPEG magic, no image
    out = tmp_path / "o"
    result = balance(
        BalanceConfig(
            out=str(out),
            sources=(SourceSpec.parse(f"name=s,images={stage},labels=human"),),
            labels=str(labels),
            val_fraction=0.0,
        )
    )
    samples = list(wds.WebDataset([str(p) for p in sorted((out / "train").glob("*.tar"))], shardshuffle=False))
    assert sorted(s["__key__"] for s in samples) == [f"good-{i}" for i in range(4)]
    rows = {r["key"]: r for r in _all_rows(out)}
    assert rows["random"]["status"] == "unknown_format" and rows["random"]["image_ext"] is None
    assert rows["fake-jpeg"]["status"] == "decode_error" and rows["fake-jpeg"]["error_message"]
    assert result.counts == {"train": 4, "val": 0}
    invalid = result.stats["invalid_images"]
    assert invalid["count"] == 2 and invalid["by_status"] == {"decode_error": 1, "unknown_format": 1}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["invalid_images"]["count"] == 2
    card = (out / "README.md").read_text()
    assert "Images that failed validation (not in the tars): 2" in card and "| `unknown_format` | 1 |" in card


@pytest.mark.parametrize("budget", ["nanx", "infx", "nan", "inf", "-infx", "1e999x", "1/0x"])
def test_nonsense_budgets_are_one_line_config_errors(budget, tmp_path):
    with pytest.raises(ConfigError, match=r"^--budget '.*': expected a multiple") as caught:
        parse_budget(budget)
    assert "\n" not in str(caught.value)
    result = CliRunner().invoke(
        app, ["balance", "name=a,images=x,labels=human", "--out", str(tmp_path), "--budget", budget]
    )
    assert result.exit_code != 0 and isinstance(result.exception, (ConfigError, SystemExit))
    assert "Traceback" not in result.output


def test_dedup_ids_are_the_cores_namespaced_ids():
    import numpy as np

    from janus_build.balance.plan import _dedup_ids
    from janus_build.core.keys import dedup_id

    values = pa.chunked_array([["lion/lion_000.jpg", None, "  ", "7"]])
    got = _dedup_ids(["stage:/a", "stage:/b"], np.array([0, 1, 0, 1]), values).to_pylist()
    assert got == [dedup_id("stage:/a", "lion/lion_000.jpg"), None, None, dedup_id("stage:/b", "7")]


def test_resume_from_another_directory_with_other_spellings_reads_the_plan(tmp_path, monkeypatch):
    from janus_build.balance import build

    labels = _labels(tmp_path)
    with ImageShardWriter(tmp_path / "stage", "00000") as writer:
        for i in range(6):
            writer.write(f"k{i}", class_image(2, i, 24), {"label": 2})
    monkeypatch.chdir(tmp_path)
    relative = BalanceConfig(
        out="o",
        sources=(SourceSpec.parse("name=s,images=stage,labels=human"),),
        labels="labels.tsv",
        val_fraction=0.0,
        shard_size=2,
    )
    first = balance(relative)
    (tmp_path / "o" / "train" / "_stats" / "00001.json").unlink()
    monkeypatch.chdir(tmp_path / "stage")

    def no_selection(*args, **kwargs):
        raise AssertionError("the plan must be read, not made again")

    monkeypatch.setattr(build, "make_plan", no_selection)
    again = balance(
        BalanceConfig(
            out=str(tmp_path / "o"),
            sources=(SourceSpec.parse(f"name=s,images={tmp_path / 'stage'},labels=human"),),
            labels=str(labels),
            val_fraction=0.0,
            shard_size=2,
        )
    )
    assert again.written == 2 and again.resumed_shards == 2 and again.counts == first.counts


def test_provenance_precedence_rules():
    from janus_build.balance.provenance import fields, merged_metadata, pick

    row = {"LICENSE": "CC BY 4.0", "license": "unknown", "title": "?"}
    stage = {"license": "CC0", "title": "a real title", "owner": "someone"}
    assert pick([row], ("license", "LICENSE")) == "CC BY 4.0"  # a real value beats a placeholder alias
    got = fields(row, stage)
    assert got["license"] == "CC BY 4.0" and got["title"] == "a real title" and got["owner"] == "someone"
    assert fields({"LICENSE": "?"}, {"license": ""})["license"] == "?"  # all placeholders: the row's stays
    assert fields({}, None)["license"] is None
    merged = merged_metadata(row, stage)
    # source_metadata keeps the row as it is and only fills columns it lacks
    assert merged["title"] == "?" and merged["license"] == "unknown" and merged["owner"] == "someone"


def test_exclude_keys_and_a_dedup_output_directory(tmp_path):
    """janus dedup writes DIR/exclude_keys.parquet and DIR/_contamination.json; balance reads both."""
    labels = _labels(tmp_path)
    with ImageShardWriter(tmp_path / "stage", "00000") as writer:
        for i in range(6):
            writer.write(f"k{i}", class_image(2, i, 24), {"label": 2})
    dedup = tmp_path / "dedup"
    dedup.mkdir()
    pq.write_table(
        pa.table({"key": ["k1", "k4"], "eval_sets": [["imagenet-r"], ["imagenet-v2"]]}), dedup / "exclude_keys.parquet"
    )
    report = {
        "format": 1,
        "method": {"hash": "phash", "max_distance": 6},
        "samples": 6,
        "contaminated": 2,
        "eval_sets": {
            "imagenet-r": {"path": "/data/r", "images": 30, "views": 120, "contaminated_samples": 1},
            "imagenet-v2": {"path": "/data/v2", "images": 50, "views": 200, "contaminated_samples": 1},
        },
    }
    (dedup / "_contamination.json").write_text(json.dumps(report))
    config = BalanceConfig(
        out=str(tmp_path / "o"),
        sources=(SourceSpec.parse(f"name=s,images={tmp_path / 'stage'},labels=human"),),
        labels=str(labels),
        val_fraction=0.0,
        exclude_keys=(str(dedup / "exclude_keys.parquet"),),
        contamination=str(dedup),
    )
    result = balance(config)
    assert sorted(r["key"] for r in _all_rows(tmp_path / "o")) == ["k0", "k2", "k3", "k5"]
    source = result.stats["sources"]["s"]
    assert source["excluded"] == 2 and source["examples"]["excluded"] == ["k1", "k4"] and source["candidates"] == 4
    assert result.stats["contamination"]["report"]["contaminated"] == 2
    card = (tmp_path / "o" / "README.md").read_text()
    assert "| imagenet-r | 1 | 30 | /data/r | 120 |" in card and "`excluded`: `k1`, `k4`" in card
    # a changed exclusion list makes the plan stale
    (tmp_path / "o" / "train" / "_stats" / "00000.json").unlink()
    pq.write_table(pa.table({"key": ["k1"]}), dedup / "exclude_keys.parquet")
    with pytest.raises(OutputError, match="exclude_keys.parquet changed since the selection was made"):
        balance(config)
