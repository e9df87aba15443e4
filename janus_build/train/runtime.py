"""Device, precision and process-group helpers shared by training and evaluation."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from janus_build.core.torchrun import Dist, dist_from_env
from janus_build.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


# A process's place in a torchrun job is the core's (shared with shard-parallel stages).
__all__ = [
    "PRECISIONS",
    "Dist",
    "autocast",
    "barrier",
    "dist_from_env",
    "init_distributed",
    "resolve_device",
    "resolve_precision",
    "shutdown_distributed",
]


def resolve_device(value: str, dist: Dist = Dist()) -> Any:
    """``auto`` -> this rank's GPU if CUDA is available, else the CPU; ``cuda`` -> ``cuda:LOCAL_RANK``."""
    import torch

    if value == "auto":
        value = "cuda" if torch.cuda.is_available() else "cpu"
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
        if value == "cuda":
            value = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(torch.device(value))
    elif value != "cpu":
        raise ConfigError(f"--device: expected auto, cpu, cuda or cuda:N, got {value!r}")
    return torch.device(value)


def resolve_precision(value: str, device: Any) -> str:
    """``auto``: bf16 on GPUs that support it, fp16 (with a gradient scaler) on older GPUs, fp32 on the CPU.

    "Support" means native bf16 (compute capability 8.0+, or ROCm): torch's default check also
    accepts GPUs that only emulate bf16 (V100, T4), where bf16 autocast is many times slower
    than fp16.
    """
    import torch

    if value not in PRECISIONS:
        raise ConfigError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {value!r}")
    if value != "auto":
        if value == "fp16" and device.type == "cpu":
            raise ConfigError("--precision fp16 needs a GPU (use bf16 or fp32 on the CPU)")
        return value
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "fp32"


def autocast(device: Any, precision: str) -> Any:
    """The autocast context for ``precision`` (a no-op for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def init_distributed(dist: Dist, device: Any) -> None:
    """Join the torchrun process group (nccl on GPUs, gloo on the CPU)."""
    import torch.distributed as td

    if dist.enabled and not td.is_initialized():
        from datetime import timedelta

        backend = "nccl" if device.type == "cuda" else "gloo"
        # rank 0 evaluates alone while the others wait at a barrier: NCCL's default 10-minute
        # timeout is within reach of an ImageNet-1k evaluation (val + Sketch + R + A + V2: 150k images)
        td.init_process_group(backend=backend, timeout=timedelta(hours=1))
        log.info("rank %d of %d joined the %s process group", dist.rank, dist.world_size, backend)


def barrier(dist: Dist) -> None:
    import torch.distributed as td

    if dist.enabled and td.is_initialized():
        td.barrier()


def shutdown_distributed() -> None:
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()
