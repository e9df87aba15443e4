"""``janus train`` and ``janus eval``: train on JANuS shards; measure robustness on ImageNet shifts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from janus_build.cli import app

_SHIFT_HELP = {
    "imagenet_val": "ImageNet validation folder (val/<wnid>/...), filtered to the label set.",
    "imagenet_v2": "ImageNet-V2 folder (class folders named by ImageNet index 0..999).",
    "imagenet_sketch": "ImageNet-Sketch folder (wnid class folders).",
    "imagenet_r": "ImageNet-R folder (its 200 wnid class folders).",
    "imagenet_a": "ImageNet-A folder (its 200 wnid class folders).",
}


def render_metrics(metrics: dict[str, Any], title: str = "Robustness") -> None:
    """Print the per-shift top-1, average robustness and effective robustness ratio as a Rich table."""
    from rich.table import Table

    from janus_build.cli.common import console, esc
    from janus_build.train.evaluate import SHIFT_TITLES

    def pct(value: Optional[float]) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    table = Table(title=esc(title))  # titles name checkpoints and label files
    table.add_column("evaluation")
    table.add_column("top-1 %", justify="right")
    table.add_column("images", justify="right")
    table.add_column("classes", justify="right")
    for shift, result in metrics["shifts"].items():
        classes = (
            f"{result['classes_present']}/{result['classes']}"
            if result.get("classes_present") is not None
            else str(result["classes"])
        )
        table.add_row(esc(SHIFT_TITLES.get(shift, shift)), pct(result["top1"]), f"{result['images']:,}", classes)
    table.add_section()
    used = ", ".join(SHIFT_TITLES[s].removeprefix("ImageNet-") for s in metrics["average_robustness_shifts"])
    note = "" if metrics["average_robustness_complete"] else f" (only {used})" if used else ""
    table.add_row(f"average robustness{note}", pct(metrics["average_robustness"]), "", "")
    ratio = metrics["effective_robustness_ratio"]
    table.add_row("effective robustness ratio", "-" if ratio is None else f"{ratio:.3f}", "", "")
    console().print(table)


@app.command()
def train(
    shards: list[str] = typer.Argument(
        ...,
        metavar="SHARD",
        help="Shard .tar files, globs, or directories (a janus balance output uses its train/ shards).",
    ),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints/, eval/, history.json, manifest.json."),
    arch: str = typer.Option(
        "resnet50",
        "--arch",
        help="resnet50, resnet26, rn50x4, vit_small_patch16_224, deit_small, convnext_tiny, gcvit_xxtiny, tiny, timm:NAME, torchvision:NAME (vl: resnet50, rn50x4, tiny, open_clip:NAME).",
    ),
    loss: str = typer.Option("ce", "--loss", help="ce (cross-entropy on labels) or vl (CLIP InfoNCE on captions)."),
    augment: str = typer.Option("simclr", "--augment", help="simclr (the paper's) or standard (crop + flip)."),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="in100, in1k or a TSV file; default: the shards' manifest, else in100."
    ),
    epochs: int = typer.Option(256, "--epochs"),
    batch_size: int = typer.Option(256, "--batch-size", help="Global batch size (divided among torchrun processes)."),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Peak learning rate; default 1e-3 (adamw) or 0.1 x batch/256 (sgd)."
    ),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or sgd (Nesterov momentum)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Default 0.05 (adamw) or 1e-4 (sgd)."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum (Nesterov)."),
    warmup_epochs: float = typer.Option(5.0, "--warmup-epochs", help="Linear warm-up before the cosine schedule."),
    image_size: int = typer.Option(224, "--image-size"),
    workers: int = typer.Option(4, "--workers", help="Data-loader processes per training process."),
    shuffle_buffer: int = typer.Option(
        2000, "--shuffle-buffer", help="Samples in each loader worker's shuffle buffer."
    ),
    decode: str = typer.Option(
        "cpu",
        "--decode",
        help="cpu (PIL in loader workers) or gpu (nvJPEG decode + batched augmentation on the device).",
    ),
    steps_per_epoch: Optional[int] = typer.Option(
        None, "--steps-per-epoch", help="Default: training samples // batch size."
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 on GPUs that have it, else fp16; fp32 on CPU), bf16, fp16, fp32."
    ),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the model."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last"),
    grad_clip: Optional[float] = typer.Option(
        None, "--grad-clip", help="Clip the gradient norm (the paper uses none)."
    ),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing"),
    multi_label: bool = typer.Option(
        False,
        "--multi-label",
        help="--loss ce: sum the cross-entropy over every class in a sample's labels (janus match --strategy mc).",
    ),
    text_transform: str = typer.Option(
        "none",
        "--text-transform",
        help="--loss vl: none, scramble (shuffle caption words) or strip (keep only class-name words).",
    ),
    jpeg_quality: Optional[int] = typer.Option(
        None, "--jpeg-quality", help="Re-encode every training image as JPEG at this quality first (jpeg10: 10)."
    ),
    eval_every: int = typer.Option(32, "--eval-every", help="Evaluate every N epochs (and after the last)."),
    eval_batch_size: int = typer.Option(256, "--eval-batch-size"),
    imagenet_val: Optional[str] = typer.Option(None, "--imagenet-val", help=_SHIFT_HELP["imagenet_val"]),
    imagenet_v2: Optional[str] = typer.Option(None, "--imagenet-v2", help=_SHIFT_HELP["imagenet_v2"]),
    imagenet_sketch: Optional[str] = typer.Option(None, "--imagenet-sketch", help=_SHIFT_HELP["imagenet_sketch"]),
    imagenet_r: Optional[str] = typer.Option(None, "--imagenet-r", help=_SHIFT_HELP["imagenet_r"]),
    imagenet_a: Optional[str] = typer.Option(None, "--imagenet-a", help=_SHIFT_HELP["imagenet_a"]),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option(
        "auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: each process uses cuda:LOCAL_RANK)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an earlier run in --out and start again."),
) -> None:
    """Train a classifier (--loss ce) or a CLIP model (--loss vl) on JANuS shards; single process or torchrun."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.train.config import TrainConfig
    from janus_build.train.loop import train as run_training
    from janus_build.train.runtime import dist_from_env

    config = TrainConfig(
        shards=tuple(shards),
        out=str(out),
        arch=arch,
        loss=loss,
        augment=augment,
        labels=labels,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        momentum=momentum,
        warmup_epochs=warmup_epochs,
        image_size=image_size,
        workers=workers,
        shuffle_buffer=shuffle_buffer,
        decode=decode,
        steps_per_epoch=steps_per_epoch,
        precision=precision,
        compile=compile,
        channels_last=channels_last,
        grad_clip=grad_clip,
        label_smoothing=label_smoothing,
        multi_label=multi_label,
        text_transform=text_transform,
        jpeg_quality=jpeg_quality,
        eval_every=eval_every,
        eval_batch_size=eval_batch_size,
        imagenet_val=imagenet_val,
        imagenet_v2=imagenet_v2,
        imagenet_sketch=imagenet_sketch,
        imagenet_r=imagenet_r,
        imagenet_a=imagenet_a,
        seed=seed,
        device=device,
        resume=resume,
        overwrite=overwrite,
    )
    main = dist_from_env().is_main
    if not main:  # under torchrun only rank 0 reports; the others speak up for errors only
        import logging

        logging.getLogger("janus_build").setLevel(logging.ERROR)
    if main:
        with RichProgress(unit_rate="images") as progress:
            summary = run_training(config, progress)
    else:
        summary = run_training(config)
    if not main:
        return
    console().print(
        f"trained {summary['epochs']} epoch(s), {summary['steps']} steps on {summary['world_size']} process(es) "
        f"({summary['precision']}); final loss {summary['last_loss']:.4f}; checkpoint {esc(summary['checkpoint'])}"
    )
    if summary["best"]:
        render_metrics(
            summary["best"],
            title=f"Best evaluation (epoch {summary['best']['model']['epoch']}): {summary['best_checkpoint']}",
        )


@app.command("eval")
def eval_command(
    checkpoint: Optional[str] = typer.Argument(
        None, metavar="CHECKPOINT", help="A janus train checkpoint (or a bare state dict with --arch)."
    ),
    timm_model: Optional[str] = typer.Option(
        None, "--timm-model", help="Evaluate a pretrained timm ImageNet model by name instead (local weights only)."
    ),
    timm_weights: Optional[str] = typer.Option(
        None, "--timm-weights", help="Weights file for --timm-model (default: the local timm/Hugging Face cache)."
    ),
    arch: Optional[str] = typer.Option(
        None, "--arch", help="Architecture of a bare state dict; checked against a janus checkpoint."
    ),
    baseline: Optional[str] = typer.Option(
        None,
        "--baseline",
        help="Score a baseline instead: open_clip:NAME (zero-shot, e.g. open_clip:RN50) or timm:NAME.",
    ),
    pretrained: str = typer.Option(
        "openai",
        "--pretrained",
        help="--baseline weights: an open_clip tag (openai, laion2b_s34b_b79k...), for timm hub or a FILE; none = random.",
    ),
    prompts: str = typer.Option(
        "openai", "--prompts", help="open_clip baselines: openai (the 80 ImageNet templates), single, or a FILE."
    ),
    imagenet_val: Optional[str] = typer.Option(None, "--imagenet-val", help=_SHIFT_HELP["imagenet_val"]),
    imagenet_v2: Optional[str] = typer.Option(None, "--imagenet-v2", help=_SHIFT_HELP["imagenet_v2"]),
    imagenet_sketch: Optional[str] = typer.Option(None, "--imagenet-sketch", help=_SHIFT_HELP["imagenet_sketch"]),
    imagenet_r: Optional[str] = typer.Option(None, "--imagenet-r", help=_SHIFT_HELP["imagenet_r"]),
    imagenet_a: Optional[str] = typer.Option(None, "--imagenet-a", help=_SHIFT_HELP["imagenet_a"]),
    labels: Optional[str] = typer.Option(
        None,
        "--labels",
        help="in100, in1k or a TSV file: predictions are restricted to these classes (default: the checkpoint's label set, else in100).",
    ),
    batch_size: int = typer.Option(256, "--batch-size"),
    workers: int = typer.Option(4, "--workers"),
    device: str = typer.Option("auto", "--device"),
    precision: str = typer.Option("auto", "--precision"),
    out: Optional[str] = typer.Option(None, "--out", help="Write the metrics JSON here."),
) -> None:
    """Top-1 on ImageNet-val/V2/Sketch/R/A restricted to the label set; average and effective robustness."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.train.evaluate import EvalConfig, evaluate

    config = EvalConfig(
        checkpoint=checkpoint,
        timm_model=timm_model,
        timm_weights=timm_weights,
        arch=arch,
        imagenet_val=imagenet_val,
        imagenet_v2=imagenet_v2,
        imagenet_sketch=imagenet_sketch,
        imagenet_r=imagenet_r,
        imagenet_a=imagenet_a,
        labels=labels,
        batch_size=batch_size,
        workers=workers,
        device=device,
        precision=precision,
        out=out,
        baseline=baseline,
        pretrained=pretrained,
        prompts=prompts,
    )
    with RichProgress(unit_rate="images") as progress:
        metrics = evaluate(config, progress)
    name = metrics["model"].get("timm_model") or metrics["model"].get("baseline") or metrics["model"].get("checkpoint")
    render_metrics(metrics, title=f"{name} ({metrics['labels']})")
    if out:
        console().print(f"metrics written to {esc(out)}", highlight=False)
