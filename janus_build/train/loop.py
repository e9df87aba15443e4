"""The training loop of ``janus train``: mixed precision, DDP under torchrun, checkpoints and exact resume.

Output directory (``--out DIR``)::

    manifest.json               stage "train", config, input shards (janus_build.stage.StageDir)
    checkpoints/last.pt         written after every epoch (atomic): the state to resume from
    checkpoints/best.pt         the checkpoint with the best average robustness so far
    eval/epoch_NNNN.json        metrics of each evaluation (janus eval's JSON layout)
    history.json                one record per finished epoch (loss, lr, images/s, metrics)

Resume is exact: a checkpoint holds model, optimizer, scheduler, gradient scaler, epoch, step,
RNG states and the best metrics; every epoch's data order and augmentation seeds depend only on
``(seed, epoch, rank)``, so ``--resume`` after epoch k reproduces the uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, InputError, OutputError
from janus_build.labels import BUILTIN_LABEL_SETS, load_label_set
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
CHECKPOINT_FORMAT = "janus-train-checkpoint/1"
# Options that may change between a run and its --resume (they do not change the result).
VOLATILE_KEYS = (
    "workers",
    "device",
    "resume",
    "overwrite",
    "compile",
    "eval_every",
    "eval_batch_size",
    "imagenet_val",
    "imagenet_v2",
    "imagenet_sketch",
    "imagenet_r",
    "imagenet_a",
)


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``janus train`` (one field per CLI option; defaults follow the paper)."""

    shards: tuple[str, ...]
    out: str
    arch: str = "resnet50"
    loss: str = "ce"
    augment: str = "simclr"
    labels: str | None = None  # default: the shards' manifest (config.labels), else in100
    epochs: int = 256
    batch_size: int = 256  # global: divided among torchrun processes
    lr: float | None = None  # default: 1e-3 (adamw) or 0.1 x batch/256 (sgd)
    optimizer: str = "adamw"
    weight_decay: float | None = None  # default: 0.05 (adamw) or 1e-4 (sgd)
    momentum: float = 0.9
    warmup_epochs: float = 5.0
    image_size: int = 224
    workers: int = 4
    shuffle_buffer: int = 2000
    decode: str = "cpu"  # cpu: PIL in loader workers; gpu: JPEG decode + augmentation on the device (nvJPEG)
    steps_per_epoch: int | None = None  # default: samples // batch_size
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True
    grad_clip: float | None = None  # the paper uses none
    label_smoothing: float = 0.0
    eval_every: int = 32
    eval_batch_size: int = 256
    imagenet_val: str | None = None
    imagenet_v2: str | None = None
    imagenet_sketch: str | None = None
    imagenet_r: str | None = None
    imagenet_a: str | None = None
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False

    def eval_folders(self) -> dict[str, str]:
        from janus_build.train.evaluate import SHIFTS

        return {s: getattr(self, s) for s in SHIFTS if getattr(self, s)}


def _validate(config: TrainConfig, world_size: int) -> None:
    from janus_build.train.data import AUGMENTATIONS
    from janus_build.train.models import LOSSES

    checks = [
        (config.loss in LOSSES, f"--loss: expected one of {', '.join(LOSSES)}, got {config.loss!r}"),
        (
            config.augment in AUGMENTATIONS,
            f"--augment: expected one of {', '.join(AUGMENTATIONS)}, got {config.augment!r}",
        ),
        (config.decode in ("cpu", "gpu"), f"--decode: expected cpu or gpu, got {config.decode!r}"),
        (
            config.optimizer in OPTIMIZERS,
            f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}",
        ),
        (config.epochs >= 1, f"--epochs: must be at least 1, got {config.epochs}"),
        (config.batch_size >= 1, f"--batch-size: must be at least 1, got {config.batch_size}"),
        (
            config.batch_size % world_size == 0,
            f"--batch-size {config.batch_size}: must be divisible by the {world_size} torchrun processes",
        ),
        (config.eval_every >= 1, f"--eval-every: must be at least 1, got {config.eval_every}"),
        (config.image_size >= 16, f"--image-size: must be at least 16, got {config.image_size}"),
        (config.workers >= 0, f"--workers: must be 0 or more, got {config.workers}"),
        (config.warmup_epochs >= 0, f"--warmup-epochs: must be 0 or more, got {config.warmup_epochs}"),
        (0 <= config.label_smoothing < 1, f"--label-smoothing: must be in [0, 1), got {config.label_smoothing}"),
        (config.lr is None or config.lr > 0, f"--lr: must be positive, got {config.lr}"),
        (config.steps_per_epoch is None or config.steps_per_epoch >= 1, "--steps-per-epoch: must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _load_last(torch: Any, last_path: Path) -> dict:
    """The ``--resume`` checkpoint, or one line naming it when it is truncated or not a checkpoint."""
    try:
        state = torch.load(last_path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = (str(exc).strip().splitlines() or ["truncated"])[0].split(". ")[0]  # torch adds advice
        raise InputError(
            f"--resume {last_path}: unreadable checkpoint ({type(exc).__name__}: {reason}); "
            "restore it from a copy or start again with --overwrite"
        ) from exc
    if not isinstance(state, dict):
        raise InputError(f"--resume {last_path}: not a janus checkpoint; start again with --overwrite")
    return state


def head_ids_for(label_set: Any) -> tuple[int, ...]:
    """The classes the CE head predicts: all 1000 ImageNet-1k indices for in100/in1k (as the
    paper), the label set's own classes for a custom label set."""
    return tuple(range(1000)) if label_set.name in BUILTIN_LABEL_SETS else tuple(label_set.ids)


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)  # no decay on biases, norms, logit scale
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    import numpy as np
    import torch

    value = (seed * 1_000_003 + epoch * 7919 + rank) % (2**31)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(path: Path, payload: dict[str, Any]) -> None:
    import torch

    from janus_build.core.fsio import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _score(metrics: dict[str, Any]) -> float | None:
    """What "best" means: average robustness, or val top-1 when no shift was evaluated."""
    if metrics.get("average_robustness") is not None:
        return float(metrics["average_robustness"])
    return metrics.get("val_top1")


def train(config: TrainConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Train a model on JANuS shards; evaluate, checkpoint and resume as described in the module doc.

    Runs as one process or as each process of a ``torchrun`` job (DistributedDataParallel; nccl on
    GPUs, gloo on the CPU); only rank 0 writes files.

    Returns:
        A summary: ``epochs`` done, ``steps``, ``last_loss``, ``history`` (per epoch), ``best``
        (metrics of the best evaluation or None), ``checkpoint`` / ``best_checkpoint`` paths.

    Raises:
        ConfigError: an invalid option. InputError: unreadable shards or evaluation folders.
        OutputError: ``--out`` holds another run (without ``--resume``/``--overwrite``).
    """
    import torch

    from janus_build.core.fsio import atomic_write_json
    from janus_build.core.stage import StageDir, fingerprint_file
    from janus_build.train import runtime
    from janus_build.train.data import (
        Normalize,
        ShardStream,
        make_loader,
        resolve_shards,
        train_transform,
        usable_samples,
    )
    from janus_build.train.evaluate import evaluate_model, list_folder
    from janus_build.train.models import ModelSpec, build_model, normalization, tokenizer_for

    dist = runtime.dist_from_env()
    _validate(config, dist.world_size)
    device = runtime.resolve_device(config.device, dist)
    precision = runtime.resolve_precision(config.precision, device)
    shard_set = resolve_shards(config.shards)
    labels_name = config.labels or shard_set.labels or "in100"
    if config.labels and shard_set.labels and config.labels != shard_set.labels:
        log.warning("--labels %s differs from the shards' label set %s", config.labels, shard_set.labels)
    label_set = load_label_set(labels_name)
    head_ids = head_ids_for(label_set)
    usable = usable_samples(shard_set.shards, head_ids if config.loss == "ce" else None)
    if usable is not None and usable < shard_set.samples:
        what = (
            f"a class of the label set {label_set.name}"
            if config.loss == "ce"
            else "a caption (--loss vl trains on captions)"
        )
        if usable == 0:
            raise InputError(f"{', '.join(config.shards)}: none of the {shard_set.samples} training samples has {what}")
        log.warning(
            "%d of the %d training samples lack %s; they are skipped",
            shard_set.samples - usable,
            shard_set.samples,
            what,
        )
    samples = shard_set.samples if usable is None else usable
    # listed once, up front: a bad evaluation folder fails now, not after an epoch
    folders = {shift: list_folder(shift, root, label_set.ids) for shift, root in config.eval_folders().items()}

    out = Path(config.out)
    last_path, best_path = out / "checkpoints" / "last.pt", out / "checkpoints" / "best.pt"
    if not config.resume and last_path.is_file() and not config.overwrite:
        raise OutputError(
            f"--out {out}: holds a training run (checkpoints/last.pt); pass --resume to continue it or --overwrite to start again"
        )
    if config.resume and not last_path.is_file():
        log.warning("--resume: %s has no checkpoint yet; starting from epoch 1", out)
    runtime.init_distributed(dist, device)
    stage = None
    if dist.is_main:
        stage = StageDir(
            out,
            "train",
            config,
            [fingerprint_file(s.path) for s in shard_set.shards],
            overwrite=config.overwrite and not config.resume,
            volatile_keys=VOLATILE_KEYS,
        )
    runtime.barrier(dist)

    spec = ModelSpec(arch=config.arch, loss=config.loss, head_ids=head_ids, image_size=config.image_size)
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = build_model(spec).to(device)
    if config.channels_last and config.loss == "ce":
        model = model.to(memory_format=torch.channels_last)

    batch_per_rank = config.batch_size // dist.world_size
    steps_per_epoch = config.steps_per_epoch or samples // config.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"--batch-size {config.batch_size}: larger than the {samples} training samples")
    total_steps = steps_per_epoch * config.epochs
    lr = config.lr or (1e-3 if config.optimizer == "adamw" else 0.1 * config.batch_size / 256)
    weight_decay = (
        config.weight_decay if config.weight_decay is not None else (0.05 if config.optimizer == "adamw" else 1e-4)
    )
    groups = _param_groups(model, weight_decay)
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    else:
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=True)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if warmup >= total_steps and dist.is_main:
        log.warning(
            "--warmup-epochs %g covers the whole run of %d epoch(s): the learning rate never reaches --lr "
            "and never decays; lower --warmup-epochs",
            config.warmup_epochs,
            config.epochs,
        )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, total_steps, warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    start_epoch, step, best, history = 0, 0, None, []
    if config.resume and last_path.is_file():
        state = _load_last(torch, last_path)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("model_spec") != spec.to_dict():
            raise InputError(
                f"--resume {last_path}: a checkpoint of another model ({state.get('model_spec', {}).get('arch')}); "
                "use the same --arch/--loss/--labels/--image-size or another --out"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step, best, history = state["epoch"], state["step"], state.get("best"), state.get("history", [])
        _set_rng_state(state["rng"])
        log.info("resumed from %s after epoch %d (step %d)", last_path, start_epoch, step)

    core = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        model = torch.compile(model)

    if config.loss == "vl":
        from open_clip.loss import ClipLoss

        clip_loss = ClipLoss(
            local_loss=False, gather_with_grad=True, cache_labels=True, rank=dist.rank, world_size=dist.world_size
        )
        stream_kwargs: dict[str, Any] = {"tokenizer": tokenizer_for(spec)}
    else:
        criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        stream_kwargs = {"head_ids": head_ids}
    mean, std = normalization(spec)
    if config.decode == "gpu":
        from janus_build.train.gpu_data import DeviceAugment

        normalize = DeviceAugment(config.augment, config.image_size, *normalization(spec), device=device)
    else:
        normalize = Normalize(*normalization(spec), device=device)
    stream = ShardStream(
        shard_set.shards,
        train_transform(config.augment, config.image_size),
        rank=dist.rank,
        world_size=dist.world_size,
        seed=config.seed,
        shuffle_buffer=config.shuffle_buffer,
        decode=config.decode == "cpu",
        **stream_kwargs,
    )
    if dist.is_main:
        log.info(
            "training %s (--loss %s, %s) on %d samples in %d shard(s): %d epoch(s) x %d steps of %d images, %d process(es)",
            config.arch,
            config.loss,
            precision,
            samples,
            len(shard_set.shards),
            config.epochs,
            steps_per_epoch,
            config.batch_size,
            dist.world_size,
        )

    last_loss = history[-1]["loss"] if history else None  # resuming a finished run trains nothing more
    if start_epoch >= config.epochs and dist.is_main:
        log.info("%s: all %d epochs are done; nothing to train", out, config.epochs)
    for epoch in range(start_epoch, config.epochs):
        _seed_epoch(config.seed, epoch, dist.rank)
        loader = make_loader(
            stream, batch_per_rank, config.workers, seed=config.seed, epoch=epoch, pin_memory=device.type == "cuda"
        )
        batches = iter(loader)
        model.train()
        task = f"epoch {epoch + 1}/{config.epochs}"
        if dist.is_main:
            progress.start(task, total=steps_per_epoch * config.batch_size, unit="images")
        loss_sum = torch.zeros((), device=device)
        started = time.perf_counter()
        for _ in range(steps_per_epoch):
            images, target = next(batches)
            # --decode gpu: JPEG bytes stay on the host; nvJPEG reads them from there
            images = normalize(images if config.decode == "gpu" else images.to(device, non_blocking=True))
            if config.channels_last and config.loss == "ce":
                images = images.contiguous(memory_format=torch.channels_last)
            target = target.to(device, non_blocking=True)
            with runtime.autocast(device, precision):
                if config.loss == "vl":
                    image_features, text_features, logit_scale = model(images, target)[:3]
                    loss = clip_loss(image_features, text_features, logit_scale)
                else:
                    loss = criterion(model(images), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if config.loss == "vl":
                with torch.no_grad():  # CLIP's temperature stays below 100
                    core.logit_scale.clamp_(0, math.log(100))
            step += 1
            loss_sum += loss.detach().float()
            if dist.is_main:
                progress.advance(task, config.batch_size)
        del batches, loader
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        if dist.enabled:
            torch.distributed.all_reduce(loss_sum)
            loss_sum /= dist.world_size
        last_loss = float(loss_sum) / steps_per_epoch
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "loss": last_loss,
            "lr": scheduler.get_last_lr()[0],
            "images_per_second": steps_per_epoch * config.batch_size / seconds,
            "seconds": seconds,
        }
        if dist.is_main:
            progress.finish(task)
            log.info(
                "epoch %d/%d: loss %.4f, %.0f images/s",
                epoch + 1,
                config.epochs,
                last_loss,
                record["images_per_second"],
            )
        evaluate_now = bool(folders) and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs)
        is_best = False
        if evaluate_now and dist.is_main:
            metrics = evaluate_model(
                core,
                spec,
                folders,
                label_set.ids,
                device=device,
                precision=precision,
                batch_size=config.eval_batch_size,
                workers=config.workers,
                progress=progress,
                task_prefix=f"eval {epoch + 1}: ",
            )
            metrics = {
                "model": {
                    "checkpoint": os.fspath(last_path),
                    "arch": spec.arch,
                    "loss": spec.loss,
                    "epoch": epoch + 1,
                    "step": step,
                },
                "labels": label_set.name,
                **metrics,
            }
            atomic_write_json(out / "eval" / f"epoch_{epoch + 1:04d}.json", metrics)
            record["metrics"] = {
                k: metrics[k] for k in ("val_top1", "average_robustness", "effective_robustness_ratio")
            }
            score = _score(metrics)
            if score is not None and (best is None or score > (_score(best) or -1.0)):
                best, is_best = metrics, True
            log.info(
                "epoch %d: val %s, average robustness %s", epoch + 1, metrics["val_top1"], metrics["average_robustness"]
            )
        history.append(record)
        if dist.is_main:
            payload = {
                "format": CHECKPOINT_FORMAT,
                "model_spec": spec.to_dict(),
                "config": stage.config if stage else None,
                "labels": labels_name,
                "model": core.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "rng": _rng_state(),
                "best": best,
                "history": history,
            }
            if is_best:  # best first: a crash between the two writes redoes this epoch, which rewrites both
                _save(best_path, payload)
            _save(last_path, payload)
            atomic_write_json(out / "history.json", history)
        runtime.barrier(dist)

    summary = {
        "epochs": config.epochs,
        "steps": step,
        "last_loss": last_loss,
        "history": history,
        "best": best,
        "checkpoint": os.fspath(last_path),
        "best_checkpoint": os.fspath(best_path) if best_path.is_file() else None,
        "world_size": dist.world_size,
        "precision": precision,
        "device": str(device),
    }
    if stage is not None:
        stage.finish({k: summary[k] for k in ("epochs", "steps", "last_loss", "world_size", "precision")})
    return summary
