"""The training loop of ``janus train``: mixed precision, DDP under torchrun, checkpoints and exact resume.

Output directory (``--out DIR``)::

    _manifest.json              stage "train", config, input shards (janus_build.core.stage.StageDir)
    checkpoints/last.pt         written after every epoch (atomic): the state to resume from
    checkpoints/best.pt         the checkpoint with the best average robustness so far
    eval/epoch_NNNN.json        metrics of each evaluation (janus eval's JSON layout)
    history.json                one record per finished epoch (loss, lr, images/s, metrics)

Resume is exact: a checkpoint holds model, optimizer, scheduler, gradient scaler, epoch, step,
RNG states and the best metrics; every epoch's data order and augmentation seeds depend only on
``(seed, epoch, rank)``, so ``--resume`` after epoch k reproduces the uninterrupted run.

:func:`run` (= :func:`train`) reads as the run does: :func:`_inputs` (shards, labels, evaluation
folders), :func:`_open_output`, :func:`_build` (model), :func:`_optimizer`, :func:`_resume`,
:func:`_objective` and :func:`_stream`, then per epoch :func:`_train_epoch`,
:func:`_evaluate_epoch` and :func:`_checkpoint`.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, InputError, OutputError
from janus_build.labels import BUILTIN_LABEL_SETS, load_label_set
from janus_build.progress import NULL_PROGRESS, Progress
from janus_build.train.config import OPTIMIZERS, VOLATILE, VOLATILE_KEYS, TrainConfig

log = logging.getLogger(__name__)

__all__ = ["OPTIMIZERS", "VOLATILE", "VOLATILE_KEYS", "TrainConfig", "run", "train"]

CHECKPOINT_FORMAT = "janus-train-checkpoint/1"


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


@dataclass
class _Inputs:
    """What the run reads: shards, the label set, the classes the head predicts, evaluation folders."""

    shard_set: Any
    label_set: Any
    labels_name: str
    head_ids: tuple[int, ...]
    samples: int
    folders: dict[str, Any]


@dataclass
class _Optim:
    optimizer: Any
    scheduler: Any
    scaler: Any


@dataclass
class _State:
    """Where the run stands: resumed from or written to ``checkpoints/last.pt``."""

    epoch: int = 0
    step: int = 0
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Run:
    """Everything one epoch needs (built once by :func:`train`)."""

    config: TrainConfig
    dist: Any
    device: Any
    precision: str
    inputs: _Inputs
    spec: Any
    core: Any  # the model itself (checkpoints, evaluation)
    model: Any  # the model as trained (DDP / compiled wrapper of ``core``)
    optim: _Optim
    loss_fn: Any
    normalize: Any
    stream: Any
    steps_per_epoch: int
    out: Path
    stage: Any

    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "checkpoints" / "best.pt"


def _inputs(config: TrainConfig) -> _Inputs:
    """Resolve the shards, the label set and the evaluation folders; count usable samples."""
    from janus_build.train.data import resolve_shards, usable_samples
    from janus_build.train.evaluate import list_folder

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
    return _Inputs(shard_set, label_set, labels_name, head_ids, samples, folders)


def _check_output(config: TrainConfig) -> Path:
    """Refuse to train over an earlier run unless --resume or --overwrite says what to do with it."""
    out = Path(config.out)
    last_path = out / "checkpoints" / "last.pt"
    if not config.resume and last_path.is_file() and not config.overwrite:
        raise OutputError(
            f"--out {out}: holds a training run (checkpoints/last.pt); pass --resume to continue it or --overwrite to start again"
        )
    if config.resume and not last_path.is_file():
        log.warning("--resume: %s has no checkpoint yet; starting from epoch 1", out)
    return out


def _open_output(config: TrainConfig, inputs: _Inputs, dist: Any) -> Any:
    """Rank 0 opens the stage directory (lock, ``_manifest.json``); every rank waits for it."""
    from janus_build.core.stage import StageDir, fingerprint_file
    from janus_build.train import runtime

    stage = None
    if dist.is_main:
        stage = StageDir(
            config.out,
            "train",
            config,
            [fingerprint_file(s.path) for s in inputs.shard_set.shards],
            overwrite=config.overwrite and not config.resume,
            volatile_keys=VOLATILE,
        )
    runtime.barrier(dist)
    return stage


def _build(config: TrainConfig, inputs: _Inputs, device: Any) -> tuple[Any, Any]:
    """The model spec and the model, with identical initial weights on every rank."""
    import torch

    from janus_build.train.models import ModelSpec, build_model

    spec = ModelSpec(
        arch=config.arch,
        loss=config.loss,
        head_ids=inputs.head_ids,
        image_size=config.image_size,
        text_transform=config.text_transform,
    )
    torch.manual_seed(config.seed)
    model = build_model(spec).to(device)
    if config.channels_last and config.loss == "ce":
        model = model.to(memory_format=torch.channels_last)
    return spec, model


def _steps_per_epoch(config: TrainConfig, samples: int) -> int:
    steps = config.steps_per_epoch or samples // config.batch_size
    if steps < 1:
        raise ConfigError(f"--batch-size {config.batch_size}: larger than the {samples} training samples")
    return steps


def _optimizer(
    config: TrainConfig, model: Any, steps_per_epoch: int, precision: str, device: Any, *, warn: bool = True
) -> _Optim:
    """AdamW or Nesterov SGD (no decay on biases and norms), cosine schedule with linear warm-up,
    and a gradient scaler (active for fp16 only)."""
    import torch

    groups = _param_groups(model, config.decay)
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999))
    else:
        optimizer = torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum, nesterov=True)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if warmup >= total_steps and warn:
        log.warning(
            "--warmup-epochs %g covers the whole run of %d epoch(s): the learning rate never reaches --lr "
            "and never decays; lower --warmup-epochs",
            config.warmup_epochs,
            config.epochs,
        )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, total_steps, warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return _Optim(optimizer, scheduler, scaler)


def _resume(config: TrainConfig, last_path: Path, spec: Any, model: Any, optim: _Optim) -> _State:
    """Load ``checkpoints/last.pt`` into the model, optimizer, scheduler, scaler and RNGs (--resume)."""
    import torch

    if not (config.resume and last_path.is_file()):
        return _State()
    state = _load_last(torch, last_path)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("model_spec") != spec.to_dict():
        raise InputError(
            f"--resume {last_path}: a checkpoint of another model ({state.get('model_spec', {}).get('arch')}); "
            "use the same --arch/--loss/--labels/--image-size or another --out"
        )
    model.load_state_dict(state["model"])
    optim.optimizer.load_state_dict(state["optimizer"])
    optim.scheduler.load_state_dict(state["scheduler"])
    optim.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    log.info("resumed from %s after epoch %d (step %d)", last_path, state["epoch"], state["step"])
    return _State(state["epoch"], state["step"], state.get("best"), state.get("history", []))


def _wrap(model: Any, config: TrainConfig, dist: Any, device: Any) -> Any:
    """DistributedDataParallel under torchrun, then ``torch.compile`` when asked."""
    import torch

    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        model = torch.compile(model)
    return model


def _objective(config: TrainConfig, spec: Any, inputs: _Inputs, dist: Any) -> tuple[Any, dict[str, Any]]:
    """``(loss_fn(model, images, target), stream keyword arguments)`` for --loss ce or vl."""
    import torch

    from janus_build.train.models import tokenizer_for

    if config.loss == "vl":
        from open_clip.loss import ClipLoss

        clip_loss = ClipLoss(
            local_loss=False, gather_with_grad=True, cache_labels=True, rank=dist.rank, world_size=dist.world_size
        )

        def vl(model: Any, images: Any, target: Any) -> Any:
            image_features, text_features, logit_scale = model(images, target)[:3]
            return clip_loss(image_features, text_features, logit_scale)

        kwargs: dict[str, Any] = {"tokenizer": tokenizer_for(spec)}
        if config.text_transform != "none":
            from janus_build.train.data import TargetOptions, TextTransform

            names = [inputs.label_set.names[c] for c in inputs.label_set.ids]
            kwargs["targets"] = TargetOptions(text_transform=TextTransform(config.text_transform, names, config.seed))
        return vl, kwargs
    if config.multi_label:
        from janus_build.train.data import TargetOptions

        return multi_label_loss, {"head_ids": inputs.head_ids, "targets": TargetOptions(multi_label=True)}
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return (lambda model, images, target: criterion(model(images), target)), {"head_ids": inputs.head_ids}


def multi_label_loss(model: Any, images: Any, target: Any) -> Any:
    """The paper's multi-label CE: per sample, the sum of the cross-entropy of each assigned class
    (``target`` is multi-hot); with one class per sample it is the ordinary cross-entropy."""
    import torch

    log_probs = torch.nn.functional.log_softmax(model(images).float(), dim=-1)
    return -(log_probs * target).sum(dim=-1).mean()


def _stream(config: TrainConfig, spec: Any, inputs: _Inputs, dist: Any, device: Any, stream_kwargs: Any) -> Any:
    """``(normalize, stream)``: the per-process sample stream and the on-device normalisation."""
    from janus_build.train.data import Normalize, ShardStream, train_transform
    from janus_build.train.models import normalization

    if config.decode == "gpu":
        from janus_build.train.gpu_data import DeviceAugment

        normalize = DeviceAugment(config.augment, config.image_size, *normalization(spec), device=device)
    else:
        normalize = Normalize(*normalization(spec), device=device)
    stream = ShardStream(
        inputs.shard_set.shards,
        train_transform(config.augment, config.image_size, config.jpeg_quality),
        rank=dist.rank,
        world_size=dist.world_size,
        seed=config.seed,
        shuffle_buffer=config.shuffle_buffer,
        decode=config.decode == "cpu",
        **stream_kwargs,
    )
    return normalize, stream


def run(config: TrainConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """The stage entry: :func:`train`."""
    return train(config, progress)


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
    from janus_build.train import runtime

    dist = runtime.dist_from_env()
    if config.batch_size % dist.world_size:
        raise ConfigError(
            f"--batch-size {config.batch_size}: must be divisible by the {dist.world_size} torchrun processes"
        )
    device = runtime.resolve_device(config.device, dist)
    precision = runtime.resolve_precision(config.precision, device)
    inputs = _inputs(config)
    out = _check_output(config)
    runtime.init_distributed(dist, device)
    stage = _open_output(config, inputs, dist)
    try:
        ctx = _prepare(config, dist, device, precision, inputs, out, stage)
        state = _resume(config, ctx.last_path, ctx.spec, ctx.core, ctx.optim)
        ctx.model = _wrap(ctx.core, config, dist, device)
        summary = _epochs(ctx, state, progress)
    finally:
        if stage is not None:
            stage.close()
    return summary


def _prepare(
    config: TrainConfig, dist: Any, device: Any, precision: str, inputs: _Inputs, out: Path, stage: Any
) -> _Run:
    spec, model = _build(config, inputs, device)
    steps_per_epoch = _steps_per_epoch(config, inputs.samples)
    optim = _optimizer(config, model, steps_per_epoch, precision, device, warn=dist.is_main)
    loss_fn, stream_kwargs = _objective(config, spec, inputs, dist)
    normalize, stream = _stream(config, spec, inputs, dist, device, stream_kwargs)
    if dist.is_main:
        log.info(
            "training %s (--loss %s, %s) on %d samples in %d shard(s): %d epoch(s) x %d steps of %d images, %d process(es)",
            config.arch,
            config.loss,
            precision,
            inputs.samples,
            len(inputs.shard_set.shards),
            config.epochs,
            steps_per_epoch,
            config.batch_size,
            dist.world_size,
        )
    return _Run(
        config,
        dist,
        device,
        precision,
        inputs,
        spec,
        model,
        model,
        optim,
        loss_fn,
        normalize,
        stream,
        steps_per_epoch,
        out,
        stage,
    )


def _epochs(ctx: _Run, state: _State, progress: Progress) -> dict[str, Any]:
    """Train the remaining epochs (evaluating and checkpointing after each); the run's summary."""
    from janus_build.core.fsio import atomic_write_json
    from janus_build.train import runtime

    config, dist = ctx.config, ctx.dist
    last_loss = state.history[-1]["loss"] if state.history else None  # resuming a finished run trains nothing more
    if state.epoch >= config.epochs and dist.is_main:
        log.info("%s: all %d epochs are done; nothing to train", ctx.out, config.epochs)
    for epoch in range(state.epoch, config.epochs):
        record = _train_epoch(ctx, state, epoch, progress)
        last_loss = record["loss"]
        is_best = _evaluate_epoch(ctx, state, epoch, record, progress)
        state.history.append(record)
        state.epoch = epoch + 1
        if dist.is_main:
            _checkpoint(ctx, state, is_best)
            atomic_write_json(ctx.out / "history.json", state.history)
        runtime.barrier(dist)
    summary = {
        "epochs": config.epochs,
        "steps": state.step,
        "last_loss": last_loss,
        "history": state.history,
        "best": state.best,
        "checkpoint": os.fspath(ctx.last_path),
        "best_checkpoint": os.fspath(ctx.best_path) if ctx.best_path.is_file() else None,
        "world_size": dist.world_size,
        "precision": ctx.precision,
        "device": str(ctx.device),
    }
    if ctx.stage is not None:
        ctx.stage.finish({k: summary[k] for k in ("epochs", "steps", "last_loss", "world_size", "precision")})
    return summary


def _train_step(ctx: _Run, images: Any, target: Any) -> Any:
    """One optimisation step; returns the (detached) loss."""
    import torch

    from janus_build.train import runtime

    config, optim = ctx.config, ctx.optim
    # --decode gpu: JPEG bytes stay on the host; nvJPEG reads them from there
    images = ctx.normalize(images if config.decode == "gpu" else images.to(ctx.device, non_blocking=True))
    if config.channels_last and config.loss == "ce":
        images = images.contiguous(memory_format=torch.channels_last)
    target = target.to(ctx.device, non_blocking=True)
    with runtime.autocast(ctx.device, ctx.precision):
        loss = ctx.loss_fn(ctx.model, images, target)
    optim.optimizer.zero_grad(set_to_none=True)
    optim.scaler.scale(loss).backward()
    if config.grad_clip:
        optim.scaler.unscale_(optim.optimizer)
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), config.grad_clip)
    optim.scaler.step(optim.optimizer)
    optim.scaler.update()
    optim.scheduler.step()
    if config.loss == "vl":
        with torch.no_grad():  # CLIP's temperature stays below 100
            ctx.core.logit_scale.clamp_(0, math.log(100))
    return loss.detach().float()


def _train_epoch(ctx: _Run, state: _State, epoch: int, progress: Progress) -> dict[str, Any]:
    """Train one epoch of ``steps_per_epoch`` steps; its history record (loss averaged over ranks)."""
    import torch

    from janus_build.train.data import make_loader

    config, dist = ctx.config, ctx.dist
    _seed_epoch(config.seed, epoch, dist.rank)
    batch_per_rank = config.batch_size // dist.world_size
    loader = make_loader(
        ctx.stream, batch_per_rank, config.workers, seed=config.seed, epoch=epoch, pin_memory=ctx.device.type == "cuda"
    )
    batches = iter(loader)
    ctx.model.train()
    task = f"epoch {epoch + 1}/{config.epochs}"
    if dist.is_main:
        progress.start(task, total=ctx.steps_per_epoch * config.batch_size, unit="images")
    loss_sum = torch.zeros((), device=ctx.device)
    started = time.perf_counter()
    for _ in range(ctx.steps_per_epoch):
        images, target = next(batches)
        loss_sum += _train_step(ctx, images, target)
        state.step += 1
        if dist.is_main:
            progress.advance(task, config.batch_size)
    del batches, loader
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if dist.enabled:
        torch.distributed.all_reduce(loss_sum)
        loss_sum /= dist.world_size
    loss = float(loss_sum) / ctx.steps_per_epoch
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": state.step,
        "loss": loss,
        "lr": ctx.optim.scheduler.get_last_lr()[0],
        "images_per_second": ctx.steps_per_epoch * config.batch_size / seconds,
        "seconds": seconds,
    }
    if dist.is_main:
        progress.finish(task)
        log.info("epoch %d/%d: loss %.4f, %.0f images/s", epoch + 1, config.epochs, loss, record["images_per_second"])
    return record


def _evaluate_epoch(ctx: _Run, state: _State, epoch: int, record: dict[str, Any], progress: Progress) -> bool:
    """Evaluate after an epoch when due (rank 0): write ``eval/epoch_NNNN.json``, update the best.

    Returns:
        True when this evaluation is the best so far.
    """
    from janus_build.core.fsio import atomic_write_json
    from janus_build.train.evaluate import evaluate_model, prefixed

    config = ctx.config
    due = (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs
    if not (ctx.inputs.folders and due and ctx.dist.is_main):
        return False
    metrics = evaluate_model(
        ctx.core,
        ctx.spec,
        ctx.inputs.folders,
        ctx.inputs.label_set.ids,
        device=ctx.device,
        precision=ctx.precision,
        batch_size=config.eval_batch_size,
        workers=config.workers,
        progress=prefixed(progress, f"eval {epoch + 1}: "),
    )
    model = {"checkpoint": os.fspath(ctx.last_path), "arch": ctx.spec.arch, "loss": ctx.spec.loss}
    model.update(epoch=epoch + 1, step=state.step)
    metrics = {"model": model, "labels": ctx.inputs.label_set.name, **metrics}
    atomic_write_json(ctx.out / "eval" / f"epoch_{epoch + 1:04d}.json", metrics)
    record["metrics"] = {k: metrics[k] for k in ("val_top1", "average_robustness", "effective_robustness_ratio")}
    log.info("epoch %d: val %s, average robustness %s", epoch + 1, metrics["val_top1"], metrics["average_robustness"])
    score = _score(metrics)
    if score is not None and (state.best is None or score > (_score(state.best) or -1.0)):
        state.best = metrics
        return True
    return False


def _checkpoint(ctx: _Run, state: _State, is_best: bool) -> None:
    """Write ``checkpoints/last.pt`` (and ``best.pt`` first when this epoch is the best)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_spec": ctx.spec.to_dict(),
        "config": ctx.stage.config if ctx.stage else None,
        "labels": ctx.inputs.labels_name,
        "model": ctx.core.state_dict(),
        "optimizer": ctx.optim.optimizer.state_dict(),
        "scheduler": ctx.optim.scheduler.state_dict(),
        "scaler": ctx.optim.scaler.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "rng": _rng_state(),
        "best": state.best,
        "history": state.history,
    }
    if is_best:  # best first: a crash between the two writes redoes this epoch, which rewrites both
        _save(ctx.best_path, payload)
    _save(ctx.last_path, payload)
