"""``janus dedup``: flag training images that are near-copies of evaluation images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app
from janus_build.dedup.config import DedupConfig

_D = DedupConfig.__dataclass_fields__  # the defaults live in the config dataclass only


def _default(name: str):
    return _D[name].default


@app.command("dedup")
def dedup_command(
    stages: list[Path] = typer.Argument(
        ...,
        metavar="STAGE_DIR...",
        help="Image stages to check: a fetch output, an import, image shards, a caption output, or a balance output's train/ or val/.",
        show_default=False,
    ),
    eval_sets: Optional[list[str]] = typer.Option(
        None,
        "--eval",
        help="An evaluation set as NAME=PATH (or PATH, named after its folder): a folder of images, walked recursively. Repeat for several.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output directory (_contamination.json, contaminated.parquet, exclude_keys.parquet)."
    ),
    max_phash: int = typer.Option(_default("max_phash"), "--max-phash", help="Largest pHash distance (of 64 bits)."),
    max_dhash: int = typer.Option(_default("max_dhash"), "--max-dhash", help="Largest dHash distance (of 64 bits)."),
    crops: bool = typer.Option(
        _default("crops"), "--crops/--no-crops", help="Also index 95 % and 90 % crops of each evaluation image."
    ),
    flips: bool = typer.Option(
        _default("flips"), "--flips/--no-flips", help="Also index the mirror image of each evaluation view."
    ),
    min_detail: float = typer.Option(
        _default("min_detail"),
        "--min-detail",
        help="Grey-level std (32x32 thumbnail) below which an image is too uniform to compare.",
    ),
    clip_model: Optional[str] = typer.Option(
        None,
        "--clip-model",
        help="Also compare CLIP image embeddings with this open_clip model (e.g. ViT-B-32); off by default.",
    ),
    clip_pretrained: str = typer.Option(
        _default("clip_pretrained"), "--clip-pretrained", help="open_clip pretrained tag or a local checkpoint file."
    ),
    min_clip_similarity: float = typer.Option(
        _default("min_clip_similarity"), "--min-clip-similarity", help="Cosine similarity that flags a pair."
    ),
    device: str = typer.Option(_default("device"), "--device", help="auto | cpu | cuda (embedding pass)."),
    clip_batch_size: int = typer.Option(
        _default("clip_batch_size"), "--clip-batch-size", help="Images per forward pass."
    ),
    workers: int = typer.Option(_default("workers"), "--workers", help="Worker processes (hashing and checking)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output instead of resuming it."),
) -> None:
    """Find training images that are near-duplicates of evaluation images (perceptual hashes)."""
    from janus_build.cli.common import RichProgress, console
    from janus_build.dedup import EvalSet, run_dedup

    config = DedupConfig(
        stages=tuple(s.expanduser().resolve() for s in stages),
        eval_sets=tuple(EvalSet.parse(text) for text in eval_sets or ()),
        out=out.expanduser().resolve(),
        max_phash=max_phash,
        max_dhash=max_dhash,
        crops=crops,
        flips=flips,
        min_detail=min_detail,
        clip_model=clip_model,
        clip_pretrained=clip_pretrained,
        min_clip_similarity=min_clip_similarity,
        device=device,
        clip_batch_size=clip_batch_size,
        workers=workers,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        summary = run_dedup(config, progress)
    per_set = ", ".join(f"{name} {s['contaminated_samples']}" for name, s in summary["eval_sets"].items())
    console().print(
        f"[bold green]dedup[/] {summary['samples']} sample(s), {summary['checked']} checked, "
        f"{summary['failed']} unreadable, {summary['too_plain']} too plain; "
        f"[bold]{summary['contaminated']} contaminated[/] ({per_set}) -> {config.out}"
    )
