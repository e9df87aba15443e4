"""janus balance: policies, budgets, de-duplication, provenance, card and plot, determinism, bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from balance_fixtures import CLASSES, GT_COUNTS, make_all
from PIL import Image

from janus_build.balance import BalanceConfig, BudgetError, SourceSpec, balance, build, load_sources_file, parse_budget
from janus_build.balance.select import proportional, stable_fraction, water_fill
from janus_build.core.shards import ImageShardWriter, read_index
from janus_build.demo.images import class_image
from janus_build.errors import ConfigError, InputError, OutputError, SchemaError


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return make_all(tmp_path_factory.mktemp("sources"))


def in100(p):
    return SourceSpec.parse(f"name=in100,images={p['gt']},labels=ground_truth,kind=imagenet")


def flickr(p, extra=""):
    return SourceSpec.parse(
        f"name=flickr,images={p['flickr']},tags={p['tags']},captions={p['captions']},role=fill,priority=2{extra}"
    )


def laion(p, extra=""):
    return SourceSpec.parse(f"name=laion100,images={p['laion']},match={p['match']},kind=laion{extra}")


def run(p, out: Path, *sources, **options):
    options.setdefault("labels", str(p["labels"]))
    options.setdefault("val_fraction", 0.0)
    return balance(BalanceConfig(out=str(out), sources=tuple(sources), **options))


def index(out: Path, split: str = "train") -> list[dict]:
    return (
        read_index(out / split).to_pylist() if (out / split).is_dir() and list((out / split).glob("*.parquet")) else []
    )


def per_class(rows) -> Counter:
    return Counter(r["label"] for r in rows)


# --- policies --------------------------------------------------------------------------------
def test_min_per_class_fills_from_tagged_flickr_and_reports_short_classes(data, tmp_path):
    result = run(data, tmp_path / "o", in100(data), flickr(data), min_per_class=6)
    rows = index(tmp_path / "o")
    counts = per_class(rows)
    # every ground-truth sample is kept; tagged Flickr only fills the deficits (3 'in' tags per class)
    assert counts == {2: 12, 6: 6, 8: 8, 13: 4}
    by_source = Counter((r["label"], r["source_name"]) for r in rows)
    assert by_source[(6, "flickr")] == 3 and by_source[(13, "flickr")] == 3 and by_source[(2, "flickr")] == 0
    assert [(s["class_id"], s["count"], s["deficit"]) for s in result.short_classes] == [(13, 4, 2)]
    flickr_rows = [r for r in rows if r["source_name"] == "flickr"]
    assert {r["label_source"] for r in flickr_rows} == {"tagged"} and {r["source"] for r in flickr_rows} == {"flickr"}
    # only the latest decision per annotator counts; an 'out' from a second annotator vetoes an 'in'
    tagged_photos = {(int(r["source_id"]) - 1000) % 6 for r in flickr_rows}
    assert tagged_photos <= {0, 1, 2} and 1 in tagged_photos
    assert result.stats["sources"]["flickr"]["tag_disagreement"] == 4
    card = (tmp_path / "o" / "README.md").read_text()
    assert "## Classes short of their minimum" in card and "| 13 | junco | 4 | 6 | 2 |" in card


def test_cap_and_seeded_sampling(data, tmp_path):
    a = run(data, tmp_path / "a", in100(data), laion(data), balance="cap", max_per_class=5, seed=1)
    rows = index(tmp_path / "a")
    assert per_class(rows) == {2: 5, 6: 5, 8: 5, 13: 5}
    run(data, tmp_path / "b", in100(data), laion(data), balance="cap", max_per_class=5, seed=1)
    run(data, tmp_path / "c", in100(data), laion(data), balance="cap", max_per_class=5, seed=2)
    keys = lambda d: sorted(r["key"] for r in index(tmp_path / d))  # noqa: E731
    assert keys("a") == keys("b") and keys("a") != keys("c")
    assert a.stats["per_class_target"] == 5


@pytest.mark.parametrize("budget,total,with_laion", [("1x", 10, False), ("2x", 20, True), ("4x", 40, True)])
def test_paper_budgets_from_ground_truth_tagged_flickr_and_matched_laion(data, tmp_path, budget, total, with_laion):
    sources = [in100(data), flickr(data)] + ([laion(data)] if with_laion else [])
    result = run(data, tmp_path / "o", *sources, balance="cap", budget=budget, budget_unit="10", min_per_class=2)
    rows = index(tmp_path / "o")
    assert len(rows) == total == result.stats["budget"]["samples"]
    counts = per_class(rows)
    pool = {int(c): v["pool"] for c, v in result.stats["per_class"].items()}
    for a in CLASSES:  # water-filling: every class >= the minimum; none exceeds a class that was cut by > 1
        assert 2 <= counts[a] <= pool[a]
        if counts[a] < pool[a]:
            assert all(counts[b] <= counts[a] + 1 for b in CLASSES)
    sources_used = Counter(r["source_name"] for r in rows)
    if not with_laion:  # IN100 has one junco: tagged Flickr fills the class to the minimum
        assert sources_used["flickr"] == 1 and counts[13] == 2
    else:
        assert sources_used["laion100"] > 0
    assert result.short_classes == []
    card = (tmp_path / "o" / "README.md").read_text()
    assert f"- Budget: {budget} = {total:,} samples (1x = 10)" in card
    table = [
        line.split(" | ") for line in card.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:].isdigit()
    ]
    assert sum(int(cells[3]) for cells in table) == total  # the per-class table adds up to the budget
    assert "Classes short of their minimum: 0" in card
    with pytest.raises(BudgetError, match=r"asks for 10 samples but --min-per-class 6 needs 2\d"):
        run(data, tmp_path / "p", *sources, balance="cap", budget="10", min_per_class=6)


def test_budget_relative_to_a_source_and_proportional_none(data, tmp_path):
    result = run(data, tmp_path / "o", in100(data), laion(data), budget="1/2x", budget_unit="in100")
    rows = index(tmp_path / "o")
    assert len(rows) == 12 == result.stats["budget"]["samples"]  # half of in100's 24 samples
    counts = per_class(rows)
    available = {int(c): v["available"] for c, v in result.stats["per_class"].items()}
    for c in CLASSES:  # the class distribution is kept (largest remainder)
        assert abs(counts[c] - available[c] * 12 / 40) < 1


def test_equal_gives_every_class_the_same_target(data, tmp_path):
    result = run(data, tmp_path / "o", in100(data), laion(data), balance="equal", budget="24")
    assert per_class(index(tmp_path / "o")) == {2: 6, 6: 6, 8: 6, 13: 6}
    assert result.stats["per_class_target"] == 6 and result.short_classes == []
    result = run(data, tmp_path / "p", in100(data), balance="equal", max_per_class=5)
    assert per_class(index(tmp_path / "p")) == {2: 5, 6: 3, 8: 5, 13: 1}
    assert {s["class_id"] for s in result.short_classes} == {6, 13}


def test_priority_and_weight_decide_which_source_fills_a_class(data, tmp_path):
    run(data, tmp_path / "p", in100(data), laion(data, ",priority=0"), balance="cap", max_per_class=4)
    rows = index(tmp_path / "p")
    assert Counter(r["source_name"] for r in rows if r["label"] == 13)["laion100"] == 4  # preferred source first
    heavy = Counter()
    for seed in range(4):
        run(
            data,
            tmp_path / f"w{seed}",
            in100(data),
            laion(data, ",weight=50"),
            balance="cap",
            max_per_class=3,
            seed=seed,
        )
        heavy.update(r["source_name"] for r in index(tmp_path / f"w{seed}") if r["label"] == 8)
    assert heavy["laion100"] > heavy["in100"]  # 4 LAION vs 8 IN100 hens, but LAION weighs 50x


# --- de-duplication ------------------------------------------------------------------------------
def _stage(directory: Path, rows: list[dict], image_index: int = 0) -> Path:
    with ImageShardWriter(directory, "00000") as writer:
        for j, r in enumerate(rows):
            writer.write(r.pop("key"), class_image(r["label"], image_index + j, 24), r)
    return directory


def test_dedup_by_photo_id_url_and_image_hash(data, tmp_path):
    a = _stage(
        tmp_path / "a",
        [
            {"key": "flickr-1", "label": 2, "photo_id": "1", "url": "https://x.org/1.jpg"},
            {"key": "flickr-2", "label": 6, "photo_id": "2", "url": "https://X.org/2.jpg#frag"},
        ],
    )
    b = _stage(
        tmp_path / "b",
        [
            {"key": "yfcc-9", "label": 8, "photo_id": "1", "url": "https://y.org/9.jpg"},  # same Flickr photo
            {"key": "yfcc-8", "label": 6, "photo_id": "8", "url": "https://x.org/2.jpg"},  # same URL
            {"key": "yfcc-7", "label": 13, "photo_id": "7", "url": None},
        ],
        image_index=100,
    )
    result = run(
        data,
        tmp_path / "o",
        SourceSpec.parse(f"name=flickr,images={a},labels=human"),
        SourceSpec.parse(f"name=yfcc,images={b},labels=human,priority=2"),
        balance="none",
    )
    keys = sorted(r["key"] for r in index(tmp_path / "o"))
    assert keys == ["flickr-1", "flickr-2", "yfcc-7"]
    dedup = result.stats["dedup"]
    assert dedup["removed"]["id"] == 1 and dedup["removed"]["url"] == 1
    assert dedup["label_conflicts"] == 1  # photo 1 was labelled 2 in one source and 8 in the other
    # the exact-image check: flickr-1000 repeats in100-2-0 byte for byte and is dropped from the lower-priority source
    result = run(data, tmp_path / "h", in100(data), flickr(data), min_per_class=6)
    assert result.stats["dedup"]["removed"]["hash"] == 1
    assert result.stats["dedup"]["examples"]["hash"] == [["in100-2-0", "flickr-1000"]]
    result = run(data, tmp_path / "n", in100(data), flickr(data), min_per_class=6, dedup=("key", "id", "url"))
    assert "hash" not in result.stats["dedup"]["removed"]


# --- output: shards, provenance, webdataset, card, plot, manifest ------------------------------------
def test_shards_read_back_with_webdataset_and_carry_provenance(data, tmp_path):
    out = tmp_path / "o"
    result = run(data, out, in100(data), flickr(data), laion(data), min_per_class=8, val_fraction=0.25, shard_size=7)
    train, val = index(out, "train"), index(out, "val")
    assert len(train) == result.counts["train"] and len(val) == result.counts["val"] and len(val) > 0
    assert {r["split"] for r in train} == {"train"} and {r["split"] for r in val} == {"val"}
    assert not {r["key"] for r in train} & {r["key"] for r in val}
    schema = pq.read_schema(out / "train" / "00000.parquet")
    assert schema.names[:11] == [
        "key",
        "label",
        "caption",
        "source",
        "source_id",
        "url",
        "license",
        "owner",
        "title",
        "label_source",
        "split",
    ]
    assert str(schema.field("label").type) == "int32"
    by_key = {r["key"]: r for r in train + val}
    urls = [str(p) for p in sorted((out / "train").glob("*.tar")) + sorted((out / "val").glob("*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == len(by_key)
    for s in samples:
        row = by_key[s["__key__"]]
        assert s["cls"] == row["label"] and s["txt"] == row["caption"]
        assert s["jpg"].size == (24, 24) and s["json"]["source_name"] == row["source_name"]
        assert s["json"]["source_metadata"]  # the source's full metadata travels along
    for s in wds.WebDataset(urls, shardshuffle=False).decode():  # default decoders: cls -> int, txt -> str
        assert s["cls"] == by_key[s["__key__"]]["label"] and isinstance(s["txt"], str)
    raw = {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False)}
    for s in raw.values():
        assert Image.open(io.BytesIO(s["jpg"])).format == "JPEG"  # a PNG source image is re-encoded
    fl = [r for r in train + val if r["source_name"] == "flickr"]
    assert fl and all(r["caption"].startswith("a blurry") and r["caption_field"] == "caption_blip_title" for r in fl)
    assert all(r["owner"] and r["url"].startswith("https://live.staticflickr.com/") and r["title"] for r in fl)
    la = [r for r in train + val if r["source_name"] == "laion100"]
    assert la and all(
        r["caption"].startswith("photo of a thing") and r["label_source"] == "sc" and r["url"] for r in la
    )
    # provenance the match output lacks comes from the image stage's index, per row; the rest keeps LAION's "?"
    n = lambda r: int(r["key"].rsplit("-", 1)[1])  # noqa: E731
    assert {n(r) % 2 for r in la} == {0, 1}
    for r in la:
        expected = ("CC BY 4.0", f"laion title {n(r)}", f"site{n(r)}") if n(r) % 2 else ("?", None, None)
        assert (r["license"], r["title"], r["owner"]) == expected
    assert "laion-00000-0" not in by_key  # matched, but no image bytes: reported, not written
    assert result.stats["sources"]["laion100"]["missing_image"] == 1
    assert result.stats["sources"]["laion100"]["examples"]["missing_image"] == ["laion-00000-0"]

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["stage"] == "balance" and manifest["completed"] is True
    summary = manifest["summary"]
    assert summary["label_set"] == "four" and summary["classes"] == list(CLASSES) and summary["label_space_size"] == 14
    assert summary["samples"] == result.counts
    assert manifest["config"]["labels"] == str(data["labels"].resolve())  # janus train loads the label set from here

    card = (out / "README.md").read_text()
    cc_by = [
        r
        for r in train + val
        if r["license"] in ("Attribution License", "Attribution-NonCommercial License", "CC BY 4.0")
    ]
    assert {r["source_name"] for r in cc_by} == {"flickr", "laion100"}
    assert cc_by and f"{len(cc_by)} sample(s) carry a licence that requires attribution" in card
    for r in cc_by:  # credited by name, linked to the photo page where the source has them (Flickr)
        if r["source_name"] == "flickr":
            owner, page = f"Owner Name {r['owner'][5:]}", f"https://www.flickr.com/photos/{r['owner']}/{r['source_id']}"
        else:
            owner, page = r["owner"], r["url"]
        assert f'"{r["title"]}" by {owner}, {page}, {r["license"]}' in card
    for label_source in ("ground_truth", "tagged", "sc"):  # names are code spans in the card
        assert f"| `{label_source}` |" in card
    assert "| `laion100` | `laion` | `sc` |" in card and "`missing_image`: `laion-00000-0`" in card
    for cid, c in result.stats["per_class"].items():
        assert f"| {cid} |" in card and c["selected"] == sum(c["by_source"].values())
    assert len((out / "ATTRIBUTION.tsv").read_text().splitlines()) == len(cc_by) + 1
    plot = Image.open(out / "class_counts.png")
    assert plot.format == "PNG" and plot.size[0] > 400


def test_deterministic_byte_identical_index_and_tars(data, tmp_path):
    for name in ("a", "b"):
        run(
            data,
            tmp_path / name,
            in100(data),
            flickr(data),
            laion(data),
            min_per_class=7,
            val_fraction=0.2,
            shard_size=5,
            seed=3,
        )
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.suffix in (".parquet", ".tar")
    )
    assert len(files) > 4
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "stats.json").read_text().replace("/a", "/b") == (
        tmp_path / "b" / "stats.json"
    ).read_text()


def test_val_split_is_stable_across_budgets_and_seeds(data, tmp_path):
    run(data, tmp_path / "a", in100(data), laion(data), val_fraction=0.3, seed=1)
    run(data, tmp_path / "b", in100(data), laion(data), val_fraction=0.3, seed=9, balance="cap", max_per_class=4)
    val_a = {r["key"] for r in index(tmp_path / "a", "val")}
    keys_b = {r["key"]: r["split"] for r in index(tmp_path / "b") + index(tmp_path / "b", "val")}
    assert all(split == ("val" if key in val_a else "train") for key, split in keys_b.items())
    fractions = stable_fraction([f"k{i}" for i in range(20000)])
    assert abs((fractions < 0.3).mean() - 0.3) < 0.02


def test_resume_rewrites_only_missing_shards_from_the_plan_and_refuses_changed_options(data, tmp_path, monkeypatch):
    out = tmp_path / "o"
    first = run(data, out, in100(data), laion(data), shard_size=6)
    assert (out / "_selection.parquet").is_file()
    victim = out / "train" / "00002.tar"
    before = victim.read_bytes()
    for path in (victim, out / "train" / "00002.parquet", out / "train" / "_stats" / "00002.json"):
        path.unlink()

    def no_selection(*args, **kwargs):
        raise AssertionError("a resume must read the plan, not select and hash again")

    monkeypatch.setattr(build, "make_plan", no_selection)
    second = run(data, out, in100(data), laion(data), shard_size=6)
    assert second.written == 6 and second.resumed_shards == len(first.shards["train"]) + len(first.shards["val"]) - 1
    assert victim.read_bytes() == before and second.stats["samples"] == first.stats["samples"]
    with pytest.raises(OutputError, match="shard_size"):
        run(data, out, in100(data), laion(data), shard_size=5)
    monkeypatch.undo()
    third = run(data, out, in100(data), laion(data), shard_size=5, overwrite=True)
    assert third.written == sum(third.counts.values())


def test_resume_refuses_a_plan_whose_inputs_changed_and_checks_written_counts(tmp_path):
    src = _stage(tmp_path / "a", [{"key": f"k{i}", "label": 2} for i in range(6)])
    labels = tmp_path / "l.tsv"
    labels.write_text("class_id\tname\n2\tshark\n")
    spec = SourceSpec.parse(f"name=a,images={src},labels=human")
    config = BalanceConfig(out=str(tmp_path / "o"), sources=(spec,), labels=str(labels), val_fraction=0.0, shard_size=4)
    balance(config)
    shard = tmp_path / "o" / "train" / "00001"
    with ImageShardWriter(shard.parent, shard.name) as writer:  # a shard that lost a row behind the marker's back
        writer.write("k-other", class_image(2, 99, 24), {"label": 2, "source": "custom", "label_source": "human"})
    with pytest.raises(OutputError, match="shard 00001 holds 1 row"):
        balance(config)
    stats = json.loads((src / "_stats" / "00000.json").read_text())
    (src / "_stats" / "00000.json").write_text(json.dumps({**stats, "touched": 1}))
    (src / "00000.parquet").touch()
    os.utime(src / "00000.parquet", ns=(1, 1))
    with pytest.raises(OutputError, match="source 'a' changed since the selection was made"):
        balance(config)


def test_sources_toml_file(data, tmp_path):
    toml = tmp_path / "sources.toml"
    toml.write_text(
        f'[[source]]\nname = "in100"\nimages = "{data["gt"]}"\nlabels = "ground_truth"\n\n'
        f'[[source]]\nname = "laion100"\nimages = "{data["laion"]}"\nmatch = "{data["match"]}"\npriority = 3\nweight = 0.5\n'
    )
    specs = load_sources_file(toml)
    assert [s.name for s in specs] == ["in100", "laion100"] and specs[1].priority == 3 and specs[1].weight == 0.5
    assert SourceSpec.parse(specs[1].to_text()) == specs[1]


# --- the selection arithmetic ------------------------------------------------------------------------
def test_water_fill_and_proportional_quotas():
    upper = np.array([100, 3, 50, 10])
    assert list(water_fill(np.zeros(4, dtype=int), upper, 40, np.arange(4))) == [14, 3, 13, 10]
    assert list(water_fill(np.zeros(4, dtype=int), upper, 40, np.array([2, 1, 0, 3]))) == [13, 3, 14, 10]  # seeded ties
    assert list(water_fill(np.array([0, 3, 0, 0]), upper, 7, np.arange(4))) == [2, 3, 1, 1]
    assert list(water_fill(np.zeros(4, dtype=int), upper, 500, np.arange(4))) == list(upper)
    q = proportional(np.array([0, 2, 0, 0]), upper, 33)
    assert q.sum() == 33 and q[1] >= 2 and q[0] > q[2] > q[3]
    assert parse_budget("1/8x") == (0.125, True) and parse_budget("120_000") == (120000.0, False)
    with pytest.raises(ConfigError, match="--budget"):
        parse_budget("lots")


# --- bad input -----------------------------------------------------------------------------------------
def test_bad_sources_and_options_name_the_source_and_key(data, tmp_path):
    with pytest.raises(ConfigError, match="source 'x': no labels"):
        SourceSpec.parse(f"name=x,images={data['gt']}")
    with pytest.raises(ConfigError, match="unknown key"):
        SourceSpec.parse(f"name=x,images={data['gt']},labels=ground_truth,colour=red")
    with pytest.raises(ConfigError, match="'in100' given to more than one source"):
        BalanceConfig(out=str(tmp_path / "o"), sources=(in100(data), in100(data)))
    with pytest.raises(ConfigError, match="--min-per-class 9 is larger than --max-per-class 5"):
        BalanceConfig(out=str(tmp_path / "o"), sources=(in100(data),), min_per_class=9, max_per_class=5)
    # a stage whose index has no label column
    bare = tmp_path / "bare"
    with ImageShardWriter(bare, "00000") as writer:
        writer.write("img-1", class_image(2, 1, 24), {"title": "t"})
    with pytest.raises(
        InputError,
        match="source 'bare': no labels: the image index .* has no 'label' or 'class_id' column .columns: key, .*title",
    ):
        run(data, tmp_path / "o", SourceSpec.parse(f"name=bare,images={bare},labels=ground_truth"))
    # labels outside the label set: named with source and key
    with pytest.raises(
        InputError, match=r"source 'in100': key 'in100-\d+-\d+' has label \d+, which is not in label set 'two'"
    ):
        two = tmp_path / "two.tsv"
        two.write_text("class_id\tname\n2\tshark\n8\then\n")
        run(data, tmp_path / "o", in100(data), labels=str(two))
    result = run(data, tmp_path / "d", in100(data), labels=str(tmp_path / "two.tsv"), unknown_labels="drop")
    assert result.stats["sources"]["in100"]["label_not_in_label_set"] == GT_COUNTS[6] + GT_COUNTS[13]
    with pytest.raises(InputError, match="source 'laion100': key 'laion-00000-0': missing image bytes"):
        run(data, tmp_path / "m", laion(data), missing_images="error")
    with pytest.raises(BudgetError, match=r"asks for 80 samples .* only 40 eligible .*in100: 24, laion100: 16"):
        run(data, tmp_path / "b", in100(data), laion(data), budget="2x", budget_unit="40")
    assert not (tmp_path / "b").exists()  # nothing written before the selection succeeded
    with pytest.raises(InputError, match="source 'flickr' captions=.*: no caption parquet files"):
        run(
            data,
            tmp_path / "c",
            in100(data),
            SourceSpec.parse(
                f"name=flickr,images={data['flickr']},tags={data['tags']},captions={tmp_path / 'nocaptions'}"
            ),
        )
    assert not (tmp_path / "c").exists()  # refused before --out recorded options the corrected command would not match
    with pytest.raises(InputError, match="source 'gone' images=.*: no such directory"):
        run(data, tmp_path / "o", SourceSpec.parse(f"name=gone,images={tmp_path / 'nope'},labels=ground_truth"))
    with pytest.raises(SchemaError, match="missing column"):
        bad_tags = tmp_path / "tags.parquet"
        pq.write_table(pq.read_table(data["tags"]).drop(["decision"]), bad_tags)
        run(data, tmp_path / "o", SourceSpec.parse(f"name=f,images={data['flickr']},tags={bad_tags}"))


def test_cli_end_to_end(data, tmp_path):
    from typer.testing import CliRunner

    from janus_build.cli import app

    out = tmp_path / "o"
    args = [
        "balance",
        f"name=in100,images={data['gt']},labels=ground_truth",
        f"name=flickr,images={data['flickr'].parent},tags={data['tags']},role=fill,priority=2",  # a fetch DIR
        "--labels",
        str(data["labels"]),
        "--out",
        str(out),
        "--min-per-class",
        "6",
        "--val-fraction",
        "0",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "30 train + 0 val" in result.output and "short of their minimum" in result.output
    assert per_class(index(out)) == {2: 12, 6: 6, 8: 8, 13: 4}
    result = CliRunner().invoke(
        app, [*args[:3], "--out", str(tmp_path / "p"), "--balance", "equal", "--budget", "lots"]
    )
    assert result.exit_code != 0 and "--budget 'lots'" in str(result.exception)
    shutil.rmtree(out)
