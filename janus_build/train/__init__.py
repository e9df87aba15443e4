"""``janus train`` and ``janus eval``: train classifiers (cross-entropy) or CLIP models (image-text
contrastive) on JANuS shards and measure their robustness on ImageNet-V2, -Sketch, -R and -A.

Modules: :mod:`.data` (webdataset pipeline and augmentations), :mod:`.models` (timm / torchvision /
open_clip architectures), :mod:`.loop` (the training loop, checkpoints, resume, DDP),
:mod:`.evaluate` (folders, masking, metrics), :mod:`.runtime` (device, precision, torchrun),
:mod:`.config` (the options, light),
:mod:`.synthetic` (generated shards and shift folders for tests, benchmarks and demos).
Heavy libraries (torch, timm, open_clip) are imported by the submodules, not here.
The API: ``janus_build.train.loop.train(TrainConfig(...))`` and
``janus_build.train.evaluate.evaluate(EvalConfig(...))``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EvalConfig", "TrainConfig", "run", "train"]


def __getattr__(name: str) -> Any:  # lazy: importing janus_build.train must not import torch
    if name == "TrainConfig":
        from janus_build.train.config import TrainConfig

        return TrainConfig
    if name in ("run", "train"):
        from janus_build.train import loop

        return getattr(loop, name)
    if name == "EvalConfig":
        from janus_build.train.evaluate import EvalConfig

        return EvalConfig
    raise AttributeError(name)
