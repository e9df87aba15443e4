"""``janus caption``: BLIP captions, spell-checked and merged with the title, for image shards.

Pipeline (one module each): :mod:`.inputs` finds the shards and samples (janus image stages,
img2dataset output, any webdataset), :mod:`.decode` decodes and preprocesses images in DataLoader
workers (bad images become rows with a status), :mod:`.model` loads BLIP and generates,
:mod:`.spelling` fixes fragments without touching class names or title words, :mod:`.merge`
builds ``caption_blip_title`` and ``prose_caption``, :mod:`.artefacts` removes BLIP's artefact
words, :mod:`.quality` scores clean-up against labelled captions, and :mod:`.run` drives the stage (``run(config, progress)``: one caption shard per input
shard, resumable, data parallel under torchrun). Options: :mod:`.config`. Columns:
:data:`janus_build.schemas.CAPTIONS`. Shards, markers and the manifest are the core's
(:mod:`janus_build.core.shards`, :mod:`janus_build.core.stage`).
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy attributes (PEP 562): the CLI imports the config module without pulling in pyarrow/torch.
_EXPORTS = {
    "DEFAULT_MODEL": "config",
    "CaptionConfig": "config",
    "merge_title": "merge",
    "prose_caption": "merge",
    "run": "run",
    "run_caption": "run",
    "SpellFixer": "spelling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
