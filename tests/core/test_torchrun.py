"""core.torchrun: a process's place in a torchrun job, dealing shards, single-process no-ops."""

from __future__ import annotations

import pytest

from janus_build.core.torchrun import Dist, barrier, deal, dist_from_env, gather, process_group


def test_dist_from_env_reads_torchruns_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert dist_from_env() == Dist(0, 1, 0) and dist_from_env().is_main and not dist_from_env().enabled
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    dist = dist_from_env()
    assert dist == Dist(3, 4, 1) and dist.enabled and not dist.is_main


def test_deal_gives_every_item_to_exactly_one_rank() -> None:
    items = [f"{i:05d}" for i in range(7)]
    shares = [deal(items, Dist(rank, 3)) for rank in range(3)]
    assert shares[0] == ["00000", "00003", "00006"]
    assert sorted(sum(shares, [])) == items
    assert deal(items, Dist(2, 9)) == ["00002"] and deal(items, Dist(8, 9)) == []


def test_a_single_process_needs_no_process_group() -> None:
    import torch.distributed as td

    with process_group(Dist()):
        assert not td.is_initialized()
        barrier(Dist())
        assert gather(Dist(), {"x": 1}) == [{"x": 1}]
