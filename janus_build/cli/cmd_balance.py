"""``janus balance``: turn labelled sources into class-balanced JANuS shards at a data budget."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app

_SOURCE_HELP = (
    "A labelled source as comma-separated key=value pairs: name=NAME,images=IMAGE_STAGE_DIR and one of "
    "labels=ground_truth|human|mapped (index column, see label_col=), tags=TAGS.parquet, match=MATCH_DIR; "
    "optional captions=DIR, caption=POLICY|COL|COL, kind=flickr|imagenet|openimages|laion|yfcc|custom, priority=N "
    "(smaller first), weight=W, role=base|fill. See docs/balance.md."
)


@app.command("balance")
def balance_command(
    sources: Optional[list[str]] = typer.Argument(None, metavar="SOURCE", help=_SOURCE_HELP, show_default=False),
    out: Path = typer.Option(
        ..., "--out", help="Output directory (train/, val/, manifest.json, README.md, class_counts.png)."
    ),
    sources_file: Optional[Path] = typer.Option(
        None, "--sources", help="TOML file of source tables (same keys as SOURCE; see docs/balance.md)."
    ),
    labels: str = typer.Option("in100", "--labels", help="Label set: in100, in1k or a TSV file (class_id, name)."),
    balance: str = typer.Option(
        "none",
        "--balance",
        help="none (keep the class distribution), cap (cap classes; a budget is water-filled), equal (same target "
        "per class) or metaclip (keep a class's samples with probability t/max(count,t), t = --max-per-class).",
    ),
    min_per_class: Optional[int] = typer.Option(
        None,
        "--min-per-class",
        help="Fill classes up to N from role=fill sources, in priority order; shortfalls are reported.",
    ),
    max_per_class: Optional[int] = typer.Option(
        None, "--max-per-class", help="Cap every class at N (seeded sampling); the threshold t of --balance metaclip."
    ),
    budget: Optional[str] = typer.Option(
        None,
        "--budget",
        help="Total samples: 1x, 2x, 4x, 10x, 20x, 1/8x (multiples of --budget-unit), a count, or like:DIR "
        "(another balance output's per-class counts).",
    ),
    budget_unit: str = typer.Option(
        "120000", "--budget-unit", help="Samples in 1x: a count (default 120000, the paper's IN100) or a source name."
    ),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    val_fraction: float = typer.Option(
        0.02, "--val-fraction", help="Share of the selected samples held out as val (stable hash of the key)."
    ),
    shard_size: int = typer.Option(10_000, "--shard-size", help="Samples per output tar."),
    dedup: str = typer.Option(
        "key,id,url,hash",
        "--dedup",
        help="Duplicate checks: key, id (photo id), url, hash (exact image bytes), comma-separated, or none.",
    ),
    unknown_labels: str = typer.Option(
        "error", "--unknown-labels", help="error or drop rows whose label is not in the label set."
    ),
    missing_images: str = typer.Option(
        "skip", "--missing-images", help="skip (and report) or error on labelled rows without image bytes."
    ),
    contamination: Optional[Path] = typer.Option(
        None,
        "--contamination",
        help="janus dedup's contamination report (its DIR or DIR/_contamination.json) to carry into the cards; "
        "default: one found in a source's stage directory.",
    ),
    exclude_keys: Optional[list[Path]] = typer.Option(
        None,
        "--exclude-keys",
        help="Parquet file with a 'key' column (janus dedup's exclude_keys.parquet): leave those samples out. "
        "Repeatable.",
    ),
    caption: Optional[str] = typer.Option(
        None,
        "--caption",
        help="Caption policy of every source whose SOURCE names none: gtcaps, classname-only, ttd, title, tags, "
        "blipcap, annotcap, prose, blipcap+annotcap or columns (default: each source's caption columns).",
    ),
    caption_template: str = typer.Option(
        "a photo of a {}.", "--caption-template", help="The gtcaps template; {} is the class name."
    ),
    empty_caption: str = typer.Option(
        "keep",
        "--empty-caption",
        help="A sample without caption: keep (empty txt; VL training skips it), drop, or fallback:POLICY.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Select, de-duplicate and balance labelled samples into webdataset shards with a dataset card."""
    import sys

    from janus_build.balance import BalanceConfig, SourceSpec, load_sources_file
    from janus_build.balance import balance as run_balance
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.errors import ConfigError

    specs = [SourceSpec.parse(text) for text in (sources or [])]
    if sources_file is not None:
        specs += load_sources_file(sources_file)
    if not specs:
        raise ConfigError("janus balance: give at least one SOURCE or --sources FILE")
    checks = () if dedup.strip().lower() == "none" else tuple(d.strip() for d in dedup.split(",") if d.strip())
    config = BalanceConfig(
        out=str(out),
        sources=tuple(specs),
        labels=labels,
        balance=balance,
        min_per_class=min_per_class,
        max_per_class=max_per_class,
        budget=budget,
        budget_unit=budget_unit,
        seed=seed,
        val_fraction=val_fraction,
        shard_size=shard_size,
        dedup=checks,
        unknown_labels=unknown_labels,
        missing_images=missing_images,
        contamination=str(contamination) if contamination else None,
        exclude_keys=tuple(str(p) for p in exclude_keys or ()),
        caption=caption,
        caption_template=caption_template,
        empty_caption=empty_caption,
        command=("janus", *sys.argv[1:]),
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        result = run_balance(config, progress)
    stats = result.stats
    console().print(
        f"janus balance: {result.counts['train']:,} train + {result.counts['val']:,} val samples "
        f"({len(result.shards['train'])} + {len(result.shards['val'])} shard(s)) in {esc(result.out)}",
        highlight=False,
    )
    for name, s in stats["sources"].items():
        console().print(
            f"  {esc(name)}: {s['selected']:,} selected of {s.get('rows', 0):,} rows "
            f"({s.get('missing_image', 0):,} without image bytes)",
            highlight=False,
        )
    removed = sum(stats["dedup"]["removed"].values())
    if removed:
        console().print(
            f"  duplicates removed: {removed:,} ({', '.join(f'{esc(k)} {v:,}' for k, v in stats['dedup']['removed'].items() if v)})",
            highlight=False,
        )
    if result.short_classes:
        console().print(
            f"[yellow]  {len(result.short_classes)} class(es) short of their minimum; see {esc(result.out / 'README.md')}[/]"
        )
    invalid = stats["invalid_images"]["count"]
    if invalid:
        console().print(
            f"[yellow]  {invalid:,} image(s) failed validation and were left out of the tars; see the card[/]"
        )
    console().print(
        f"  dataset card: {esc(result.out / 'README.md')} (Croissant: {esc(result.out / 'croissant.json')})",
        highlight=False,
    )
