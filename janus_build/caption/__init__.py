"""``janus caption``: BLIP captions, spell-checked and merged with the title, for image shards.

Pipeline (one module each): :mod:`.inputs` finds the shards and samples (janus image stages,
img2dataset output, any webdataset), :mod:`.decode` decodes and preprocesses images in DataLoader
workers (bad images become rows with a status), :mod:`.model` loads BLIP and generates,
:mod:`.spelling` fixes fragments without touching class names or title words, :mod:`.merge`
builds ``caption_blip_title`` and ``prose_caption``, and :mod:`.run` drives the stage
(one caption shard per input shard, resumable). Columns: :data:`janus_build.schemas.CAPTIONS`.
"""

from janus_build.caption.config import DEFAULT_MODEL, CaptionConfig
from janus_build.caption.merge import merge_title, prose_caption
from janus_build.caption.run import run_caption
from janus_build.caption.spelling import SpellFixer

__all__ = ["DEFAULT_MODEL", "CaptionConfig", "SpellFixer", "merge_title", "prose_caption", "run_caption"]
