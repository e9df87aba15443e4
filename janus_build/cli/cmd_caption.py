"""``janus caption``: BLIP captions, spell-checked and merged with the title, for image shards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from janus_build.caption.config import CaptionConfig
from janus_build.cli import app

_D = CaptionConfig.__dataclass_fields__  # the defaults live in the config dataclass only


def _default(name: str):
    return _D[name].default


@app.command()
def caption(
    stage_dir: Path = typer.Argument(
        ...,
        metavar="STAGE_DIR",
        help="Image stage: a fetch output (its images/), janus image shards, img2dataset output or webdataset tars.",
    ),
    out: Path = typer.Option(..., "--out", help="Output directory of caption shards (one per input shard)."),
    model: str = typer.Option(
        _default("model"),
        "--model",
        help="Hugging Face model name (e.g. Salesforce/blip-image-captioning-large) or a local directory.",
    ),
    prompt: str = typer.Option(
        _default("prompt"),
        "--prompt",
        help="Text the decoder starts from (BLIP's own default); stripped from captions. '' for none.",
    ),
    device: str = typer.Option(_default("device"), "--device", help="auto | cpu | cuda."),
    precision: str = typer.Option(
        _default("precision"), "--precision", help="auto (bf16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16."
    ),
    batch_size: int = typer.Option(_default("batch_size"), "--batch-size", help="Images per generate() call."),
    num_workers: int = typer.Option(
        _default("num_workers"),
        "--num-workers",
        help="Processes decoding and preprocessing images (0: in the main process).",
    ),
    seed: int = typer.Option(
        _default("seed"), "--seed", help="Sampling seed; same seed, batch size and device give the same captions."
    ),
    num_beams: int = typer.Option(
        _default("num_beams"), "--num-beams", help="1: nucleus sampling (the paper); >1: beam search."
    ),
    top_p: float = typer.Option(_default("top_p"), "--top-p", help="Nucleus sampling probability mass."),
    top_k: int = typer.Option(
        _default("top_k"), "--top-k", help="Top-k cut before nucleus sampling (50 as in BLIP's code; 0: off)."
    ),
    max_length: int = typer.Option(
        _default("max_length"), "--max-length", help="Longest caption in tokens (prompt included)."
    ),
    min_length: int = typer.Option(
        _default("min_length"), "--min-length", help="Shortest caption in tokens (prompt included)."
    ),
    repetition_penalty: float = typer.Option(
        _default("repetition_penalty"), "--repetition-penalty", help="Penalty on repeated tokens (1.0: none)."
    ),
    title_col: str = typer.Option(
        _default("title_col"),
        "--title-col",
        help="Column (or json field) holding the title merged into caption_blip_title.",
    ),
    human_caption_col: Optional[str] = typer.Option(
        None,
        "--human-caption-col",
        help="Column with human-written captions preferred for prose_caption; default: human_caption / localized_narrative / narrative when present.",
    ),
    classnames: str = typer.Option(
        _default("classnames"),
        "--classnames",
        help="Term set whose words are never spell-corrected: openai | default | FILE.",
    ),
    spellcheck: bool = typer.Option(
        _default("spellcheck"), "--spellcheck/--no-spellcheck", help="Spell-check BLIP's captions."
    ),
    max_image_pixels: int = typer.Option(
        _default("max_image_pixels"),
        "--max-image-pixels",
        help="Refuse images that would decode to more pixels (after JPEG reduced-scale decoding).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output instead of resuming it."),
) -> None:
    """Caption images with BLIP (nucleus sampling), fix spelling, merge the title; resumable by shard.

    Several GPUs: torchrun --nproc_per_node N -m janus_build caption ... (shards are dealt to
    the processes; the output is the same as one process writes).
    """
    from janus_build.caption.run import run_caption
    from janus_build.cli.common import RichProgress, console, esc

    config = CaptionConfig(
        stage_dir=stage_dir.expanduser().resolve(),
        out=out.expanduser().resolve(),
        model=model,
        prompt=prompt,
        device=device,
        precision=precision,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        num_beams=num_beams,
        top_p=top_p,
        top_k=top_k,
        max_length=max_length,
        min_length=min_length,
        repetition_penalty=repetition_penalty,
        title_col=title_col,
        human_caption_col=human_caption_col,
        classnames=classnames,
        spellcheck=spellcheck,
        max_image_pixels=max_image_pixels,
        overwrite=overwrite,
    )
    if os.environ.get("RANK", "0") != "0":  # a torchrun process other than rank 0: rank 0 reports
        run_caption(config)
        return
    with RichProgress() as progress:
        summary = run_caption(config, progress)
    failures = ", ".join(f"{esc(k)} {v}" for k, v in summary.get("failures", {}).items()) or "none"
    rate = summary.get("images_per_second")
    console().print(
        f"[bold green]caption[/] {summary['shards_written']} shard(s) written, {summary['shards_skipped']} already done; "
        f"{summary['rows']} row(s), {summary['successes']} captioned; failures: {failures}"
        + (f"; {rate} images/s" if rate else "")
        + f" -> {esc(config.out)}"
    )
