"""``janus label``: model labels (zero-shot CLIP or a pretrained classifier) for an image stage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app
from janus_build.label.config import LabelConfig

_D = LabelConfig.__dataclass_fields__  # the defaults live in the config dataclass only


@app.command()
def label(
    stage_dir: Path = typer.Argument(..., help="Image stage: an import, a fetch output, janus image shards."),
    out: Path = typer.Option(..., "--out", help="Output directory: one label shard per input shard + _stats.json."),
    model: str = typer.Option(
        _D["model"].default,
        "--model",
        help="open_clip:NAME (zero-shot; the paper's ViT-L-14) or timm:NAME (classifier).",
    ),
    pretrained: str = typer.Option(
        _D["pretrained"].default,
        "--pretrained",
        help="open_clip pretrained tag (openai, laion2b_s32b_b82k, ...); timm: hub or a weights file; none: random.",
    ),
    prompts: str = typer.Option(
        _D["prompts"].default, "--prompts", help="openai (80 ImageNet templates) | single | FILE (one template a line)."
    ),
    labels: str = typer.Option(_D["labels"].default, "--labels", help="Label set: in100 | in1k | FILE."),
    threshold: float = typer.Option(
        _D["threshold"].default, "--threshold", help="Below this probability the label is -1 (no label)."
    ),
    truth_col: Optional[str] = typer.Option(
        None, "--truth-col", help="Ground-truth class column of the image index: label accuracy and utilisation."
    ),
    batch_size: int = typer.Option(_D["batch_size"].default, "--batch-size", help="Images per forward pass."),
    workers: int = typer.Option(_D["workers"].default, "--workers", help="Image-decoding loader processes."),
    device: str = typer.Option(_D["device"].default, "--device", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option(_D["precision"].default, "--precision", help="auto | fp32 | bf16 | fp16."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier label output instead of resuming."),
) -> None:
    """Label images with a model (the paper's cliplabel / swinlabel); resumable by shard."""
    from rich.markup import escape

    from janus_build.cli.common import RichProgress, console
    from janus_build.label import run_label

    config = LabelConfig(
        stage_dir=stage_dir,
        out=out,
        model=model,
        pretrained=pretrained,
        prompts=prompts,
        labels=labels,
        threshold=threshold,
        truth_col=truth_col,
        batch_size=batch_size,
        workers=workers,
        device=device,
        precision=precision,
        overwrite=overwrite,
    )
    with RichProgress("shards") as progress:
        summary = run_label(config, progress)
    quality = ""
    if "label_accuracy" in summary:
        quality = f"; label accuracy {summary['label_accuracy']:.3f}, dataset utilisation {summary['dataset_utilization']:.3f}"
    console().print(
        f"[bold green]label[/] {summary['rows']} image(s), {summary['labelled']} labelled by "
        f"{escape(summary['label_source'])}{quality} -> {escape(str(out))}"
    )
