"""``janus dedup``: evaluation-set contamination check by perceptual hashes (see docs/dedup.md).

Modules: :mod:`.config` (options), :mod:`.hashing` (pHash/dHash of images and of the views of
evaluation images), :mod:`.index` (multi-index hashing, exact Hamming-radius search),
:mod:`.evalsets` (listing and caching evaluation hashes), :mod:`.check` (one input shard, in a
worker), :mod:`.embed` / :mod:`.clip_pass` (the optional CLIP-embedding pass), :mod:`.report` (pairs, keys to exclude, ``_contamination.json``), :mod:`.run` (the stage).
"""

from __future__ import annotations

from typing import Any

from janus_build.dedup.config import DedupConfig, EvalSet

__all__ = ["DedupConfig", "EvalSet", "run", "run_dedup"]


def run_dedup(config: DedupConfig, progress: Any = None, embedder: Any = None) -> dict[str, Any]:
    """Run the stage (see :func:`janus_build.dedup.run.run_dedup`)."""
    from janus_build.dedup.run import run_dedup as _run
    from janus_build.progress import NULL_PROGRESS

    return _run(config, progress or NULL_PROGRESS, embedder)


run = run_dedup
