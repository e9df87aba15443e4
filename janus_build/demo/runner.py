"""``janus demo``: a miniature JANuS built end to end, offline, explaining each step.

Every stage reads what the previous one wrote, through the same library calls the commands
use: ``fetch`` against the project's fake Flickr server (generated photos, some of them
"confusers" whose picture is not the class), ``tag`` (answers from the generated truth, or the
real page with ``interactive``), ``caption`` (a tiny random BLIP), ``match`` (the shipped caption
sample), ``balance`` at two budgets, ``train`` a small network for a few CPU epochs per budget,
and ``eval`` on generated ImageNet-val/-V2/-Sketch/-R/-A folders.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, OutputError
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

# lion, goose, koala, flamingo: IN100 classes that ImageNet-R and ImageNet-A both have.
DEMO_CLASSES = (291, 99, 105, 130)
BUDGETS = ("1x", "2x")


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``janus demo``."""

    out: Path = Path("demo-out")
    classes: tuple[int, ...] = DEMO_CLASSES
    per_class: int = 60  # Flickr photos kept per class
    ground_truth_per_class: int | None = None  # the IN100-like ground-truth source (1x); None: per_class // 2
    image_size: int = 48
    epochs: int = 6
    batch_size: int = 32
    eval_per_class: int = 12
    confuser_fraction: float = 0.2
    interactive: bool = False
    port: int = 8765
    seed: int = 0

    def validate(self) -> None:
        from janus_build.labels import load_label_set

        in100 = load_label_set("in100")
        unknown = [c for c in self.classes if c not in in100]
        if unknown or len(self.classes) < 2:
            raise ConfigError(f"--classes: give at least two IN100 class ids (unknown: {unknown})")
        if self.per_class < 5 or self.epochs < 1:
            raise ConfigError("--per-class must be at least 5 and --epochs at least 1")


@dataclass
class DemoResult:
    """Where everything went, and the figures the demo printed."""

    out: Path
    paths: dict[str, Path] = field(default_factory=dict)
    fetch_report: dict[str, Any] = field(default_factory=dict)
    tag_stats: dict[str, Any] = field(default_factory=dict)
    tag_truth: dict[str, str] = field(default_factory=dict)
    caption_stats: dict[str, Any] = field(default_factory=dict)
    match_stats: dict[str, Any] = field(default_factory=dict)
    balance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_folders: dict[str, str] = field(default_factory=dict)
    contamination: dict[str, Any] = field(default_factory=dict)


Narrate = Callable[[str, str], None]


def _log_narrate(title: str, text: str) -> None:
    log.info("%s: %s", title, text)


def run_demo(config: DemoConfig, narrate: Narrate = _log_narrate, progress: Progress = NULL_PROGRESS) -> DemoResult:
    """Build the miniature JANuS in ``config.out`` (replacing an earlier demo there)."""
    config.validate()
    out = _prepare_out(Path(config.out))
    result = DemoResult(out=out)
    labels_file = _write_label_file(out / "classes.tsv", config.classes)
    result.paths["labels"] = labels_file
    _fetch_and_tag(config, out, result, narrate, progress)
    _caption(config, out, result, narrate, progress)
    _match_and_download(config, out, labels_file, result, narrate, progress)
    _ground_truth(config, out, result, narrate)
    _eval_sets(config, out, result)
    _contamination(out, result, narrate, progress)
    _balance(config, out, labels_file, result, narrate, progress)
    _train_and_eval(config, out, result, narrate, progress)
    return result


# --- steps ---------------------------------------------------------------------------------
def _prepare_out(out: Path) -> Path:
    marker = out / ".janus-demo"
    if out.exists() and any(out.iterdir()):
        if not marker.exists():
            raise OutputError(f"--out {out}: not empty and not an earlier demo; choose another directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("built by janus demo; the whole directory is replaced on the next run\n")
    return out


def _write_label_file(path: Path, classes: tuple[int, ...]) -> Path:
    from janus_build.labels import load_label_set, load_term_set

    names = load_label_set("in1k").names
    wnids = load_label_set("in1k").wnids
    terms = load_term_set("openai").terms
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["class_id", "wnid", "name", "terms"])
        for class_id in classes:
            writer.writerow([class_id, wnids[class_id], names[class_id], "|".join(terms[class_id])])
    return path


def _fetch_and_tag(config: DemoConfig, out: Path, result: DemoResult, narrate: Narrate, progress: Progress) -> None:
    from janus_build.fetch import FetchConfig, run_fetch

    narrate(
        "1. fetch",
        "Starting a fake Flickr API on 127.0.0.1 with generated photos, then searching it with the real "
        "IN100 queries (queries/in100.toml): Creative Commons only, safe search, by interestingness, "
        "exclusion terms applied again locally. img2dataset downloads the chosen images into shards.",
    )
    flickr = out / "flickr"
    with make_fake_flickr(config) as fake:
        fetched = run_fetch(
            FetchConfig(
                out=flickr,
                classes=tuple(config.classes),
                per_class=config.per_class,
                api_url=fake.api_url,
                calls_per_hour=10**6,
                processes=1,
                threads=8,
                max_size=240,
            ),
            credentials=fake.credentials,
            progress=progress,
        )
        truth = fake.truth()
    result.fetch_report = fetched.report
    result.paths["fetch"] = flickr
    _tag(config, flickr, truth, result, narrate)


def make_fake_flickr(config: DemoConfig) -> Any:
    """The demo's fake Flickr (not started): its corpus, and so :meth:`truth`, depend only on ``config``."""
    from janus_build.demo.flickr_server import FakeFlickr
    from janus_build.fetch.queries import load_queries

    queries = load_queries(None, list(config.classes))
    return FakeFlickr(
        {c.class_id: c.name for c in queries},
        queries={c.class_id: c.queries[0].text() for c in queries},
        photos_per_class=max(200, config.per_class * 3),
        confuser_fraction=config.confuser_fraction,
        seed=config.seed,
        image_size=96,
    )


def _tag(config: DemoConfig, flickr: Path, truth: dict[str, bool], result: DemoResult, narrate: Narrate) -> None:
    from janus_build.core.shards import read_index
    from janus_build.tag import compute_stats, export_tags, open_queue, record_decisions

    keys = [
        k
        for k, status in zip(
            *(read_index(flickr / "images", ["key", "status"]).column(c).to_pylist() for c in ("key", "status"))
        )
        if status == "success"
    ]
    queue = open_queue(flickr)
    try:
        if config.interactive:
            from janus_build.tag.server import ServeConfig, run

            narrate(
                "2. tag",
                f"Tag the photos yourself at http://127.0.0.1:{config.port}/ (i = in, o = out, "
                "u = unsure, Backspace = undo, g = grid). Press Ctrl-C here when you are done.",
            )
            try:
                run(queue, ServeConfig(stage_dir=flickr, port=config.port, annotator="you"))
            except KeyboardInterrupt:
                pass
        else:
            narrate(
                "2. tag",
                "Tagging each photo in-class or out-of-class, as a person would on the tagging page "
                "(`janus tag serve`); here the answers come from the fake server's ground truth. "
                "Every decision goes through the same SQLite queue the page uses.",
            )
            decisions = {key: "in" if truth.get(key, True) else "out" for key in keys}
            record_decisions(queue, decisions, annotator="oracle")
            result.tag_truth = decisions
        result.tag_stats = compute_stats(queue, flickr)
        export = flickr.parent / "flickr-tags.parquet"
        export_tags(queue, export)
        result.paths["tags"] = export
    finally:
        queue.close()


def _caption(config: DemoConfig, out: Path, result: DemoResult, narrate: Narrate, progress: Progress) -> None:
    from janus_build.caption import CaptionConfig, run_caption
    from janus_build.demo.tiny_blip import build_tiny_blip

    narrate(
        "3. caption",
        "Captioning every photo with BLIP, spell-checking the caption and merging in the Flickr "
        "title. The demo uses a tiny, randomly initialised BLIP (no download), so the words are "
        "random; `--model Salesforce/blip-image-captioning-base` gives real captions.",
    )
    model = build_tiny_blip(out / "models" / "tiny-blip")
    captions = out / "flickr-captions"
    result.caption_stats = run_caption(
        CaptionConfig(
            stage_dir=result.paths["fetch"],
            out=captions,
            model=str(model),
            device="cpu",
            batch_size=16,
            num_workers=0,
            max_length=12,
            seed=config.seed,
        ),
        progress,
    )
    result.paths["captions"] = captions


def _match_and_download(
    config: DemoConfig, out: Path, labels_file: Path, result: DemoResult, narrate: Narrate, progress: Progress
) -> None:
    import pyarrow.parquet as pq

    from janus_build.core.shards import ImageShardWriter
    from janus_build.demo.images import class_image
    from janus_build.match import MatchConfig, run_match
    from janus_build.resources import package_data

    narrate(
        "4. match",
        "Labelling web captions by n-gram subset matching (the shipped caption sample stands in for "
        "LAION metadata), with ground truth to measure label accuracy. Then the matched rows' "
        "images are 'downloaded' (generated here: LAION's URLs are not reachable offline).",
    )
    match_dir = out / "laion-match"
    result.match_stats = run_match(
        MatchConfig(
            inputs=(str(package_data("sample_captions.parquet")),),
            out=str(match_dir),
            labels=str(labels_file),
            classnames=str(labels_file),
            truth_col="class_id",
        ),
        progress,
    )
    result.paths["match"] = match_dir
    images = out / "laion-images"
    table = pq.read_table(match_dir / "00000.parquet", columns=["key", "label", "class_id", "URL", "TEXT"])
    with ImageShardWriter(images, "00000") as writer:
        for index, row in enumerate(table.to_pylist()):
            if row["label"] < 0:
                continue
            shown = (
                row["class_id"] if row["class_id"] in config.classes else 3000 + index
            )  # wrong matches show something else
            writer.write(
                row["key"],
                class_image(shown, 50_000 + index, size=96),
                {"url": row["URL"], "title": row["TEXT"], "license": "unknown (web alt-text)", "source_id": row["key"]},
            )
    result.paths["laion_images"] = images


def _ground_truth(config: DemoConfig, out: Path, result: DemoResult, narrate: Narrate) -> None:
    from janus_build.core.shards import ImageShardWriter
    from janus_build.demo.images import class_image

    narrate(
        "5. ground truth",
        "Writing a small IN100-like ground-truth source (generated images with known labels): "
        "in the paper, IN100 itself is the 1x budget.",
    )
    images = out / "imagenet-like"
    with ImageShardWriter(images, "00000") as writer:
        for class_id in config.classes:
            for index in range(config.ground_truth_per_class or config.per_class // 2):
                key = f"imagenet-{class_id}-{index:04d}"
                writer.write(
                    key,
                    class_image(class_id, 20_000 + index, size=96),
                    {"label": class_id, "title": "", "license": "ImageNet terms of access", "source_id": key},
                )
    result.paths["ground_truth"] = images


def _eval_sets(config: DemoConfig, out: Path, result: DemoResult) -> None:
    from janus_build.demo.eval_sets import write_synthetic_shift_folders

    result.paths["eval"] = out / "eval"
    result.eval_folders = write_synthetic_shift_folders(
        out / "eval", config.classes, per_class=config.eval_per_class, size=config.image_size
    )


def _contamination(out: Path, result: DemoResult, narrate: Narrate, progress: Progress) -> None:
    from janus_build.dedup import run_dedup
    from janus_build.dedup.config import DedupConfig, EvalSet

    p = result.paths
    narrate(
        "6. contamination check",
        "Looking for near-copies of the evaluation images (resized, re-encoded, cropped, mirrored) "
        "among every training image, so no test image leaks into the dataset.",
    )
    stages = (p["ground_truth"], p["fetch"] / "images", p["laion_images"])
    eval_sets = tuple(EvalSet(name, Path(path)) for name, path in result.eval_folders.items())
    p["dedup"] = out / "dedup"
    result.contamination = run_dedup(DedupConfig(stages=stages, eval_sets=eval_sets, out=p["dedup"]), progress)


def _balance(
    config: DemoConfig, out: Path, labels_file: Path, result: DemoResult, narrate: Narrate, progress: Progress
) -> None:
    from janus_build.balance import BalanceConfig, balance
    from janus_build.balance.spec import SourceSpec

    p = result.paths
    sources = (
        SourceSpec.parse(f"name=imagenet,images={p['ground_truth']},labels=ground_truth,kind=imagenet"),
        SourceSpec.parse(
            f"name=flickr,images={p['fetch'] / 'images'},tags={p['tags']},captions={p['captions']},priority=2"
        ),
        SourceSpec.parse(f"name=laion,images={p['laion_images']},match={p['match']},kind=laion,priority=2"),
    )
    for budget in BUDGETS:
        narrate(
            f"7. balance {budget}",
            f"Rebalancing the three sources into webdataset shards at a {budget} budget "
            "(1x = the ground-truth source's size), with a dataset card, an attribution "
            "list and per-class counts.",
        )
        target = out / f"janus-{budget}"
        summary = balance(
            BalanceConfig(
                out=str(target),
                sources=sources,
                labels=str(labels_file),
                balance="cap",
                budget=budget,
                budget_unit="imagenet",
                seed=config.seed,
                val_fraction=0.0,
                shard_size=200,
                exclude_keys=(str(p["dedup"] / "exclude_keys.parquet"),),
                contamination=str(p["dedup"]),
            ),
            progress,
        )
        result.balance[budget] = summary
        p[f"janus_{budget}"] = target


def _train_and_eval(config: DemoConfig, out: Path, result: DemoResult, narrate: Narrate, progress: Progress) -> None:
    from janus_build.train.evaluate import EvalConfig, evaluate
    from janus_build.train.loop import TrainConfig, train

    folders = result.eval_folders
    for budget in BUDGETS:
        narrate(
            f"8. train + eval {budget}",
            f"Training a small CNN for {config.epochs} CPU epochs on the {budget} shards, "
            "then evaluating it on generated ImageNet-val, -V2, -Sketch, -R and -A folders "
            "with predictions restricted to the label set.",
        )
        run = out / f"train-{budget}"
        train(
            TrainConfig(
                shards=(str(result.paths[f"janus_{budget}"]),),
                out=str(run),
                arch="tiny",
                epochs=config.epochs,
                batch_size=config.batch_size,
                image_size=config.image_size,
                workers=0,
                augment="standard",
                lr=3e-3,
                warmup_epochs=0.5,
                eval_every=config.epochs,
                device="cpu",
                seed=config.seed,
                **folders,
            ),
            progress,
        )
        result.metrics[budget] = evaluate(
            EvalConfig(
                checkpoint=str(run), device="cpu", workers=0, out=str(out / f"metrics-{budget}.json"), **folders
            ),
            progress,
        )
        result.paths[f"train_{budget}"] = run
