"""A process's place in a ``torchrun`` job, and the few collective steps stages need.

``torchrun --nproc_per_node N -m janus_build <stage> ...`` starts N copies of a stage, each with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment. Training uses them for
DistributedDataParallel; shard-parallel stages (captioning) deal their shards to ranks with
:func:`deal` and meet at :func:`barrier` / :func:`gather`. Without torchrun everything here is a
no-op for rank 0 of 1. torch is imported only when a job has more than one process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from janus_build.errors import JanusError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_from_env() -> Dist:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by ``torchrun``."""
    return Dist(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def deal(items: Sequence[T], dist: Dist) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th, starting at its rank (round robin)."""
    return list(items[dist.rank :: dist.world_size])


@contextlib.contextmanager
def process_group(dist: Dist, backend: str = "gloo", timeout: timedelta = timedelta(hours=1)) -> Iterator[None]:
    """Join the job's process group for the block (nothing without torchrun).

    gloo suffices for a stage that only meets at barriers and gathers small objects; each rank
    still runs its model on its own GPU (``cuda:LOCAL_RANK``).
    """
    if not dist.enabled:
        yield
        return
    import torch.distributed as td

    owned = not td.is_initialized()
    if owned:
        td.init_process_group(backend=backend, timeout=timeout)
        log.info("rank %d of %d joined the %s process group", dist.rank, dist.world_size, backend)
    try:
        yield
    finally:
        if owned and td.is_initialized():
            td.destroy_process_group()


def barrier(dist: Dist, ok: bool = True) -> None:
    """Wait for every rank; raise on every rank when any rank arrived with ``ok`` False.

    Raises:
        JanusError: another rank failed before the barrier (this rank's own error propagates).
    """
    if not dist.enabled:
        return
    results = gather(dist, ok)
    if not all(results) and ok:
        failed = [rank for rank, value in enumerate(results) if not value]
        raise JanusError(f"torchrun rank(s) {', '.join(map(str, failed))} failed; see their log")


def gather(dist: Dist, value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not dist.enabled:
        return [value]
    import torch.distributed as td

    values: list[Any] = [None] * dist.world_size
    td.all_gather_object(values, value)
    return values
