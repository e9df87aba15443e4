"""The options of ``janus dedup``, with their defaults in one place (light imports only)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from janus_build.errors import ConfigError

# Thresholds measured on transformed copies (docs/dedup.md, benchmarks/bench_dedup.py): every
# resize / JPEG / colour / crop copy was within them, no distinct image was.
DEFAULT_MAX_PHASH = 8
DEFAULT_MAX_DHASH = 10
HASH_BITS = 64
DEVICES = ("auto", "cpu", "cuda")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """One evaluation set: its name in the outputs and its folder (walked recursively)."""

    name: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> EvalSet:
        """``NAME=PATH`` or a bare ``PATH`` (named after its folder)."""
        name, sep, path = text.partition("=")
        if not sep:
            name, path = Path(text).expanduser().resolve().name, text
        if not path:
            raise ConfigError(f"--eval {text!r}: expected NAME=PATH or PATH")
        return cls(name, Path(path).expanduser().resolve())

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"--eval {self.name}={self.path}: the name must be letters, digits, '_' or '-'")
        object.__setattr__(self, "path", Path(self.path))


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    """Options of :func:`janus_build.dedup.run_dedup`; the CLI options map onto them one to one.

    A training image is flagged when one indexed view of an evaluation image (the image, and
    with ``crops``/``flips`` its crops and mirror images) is within ``max_phash`` bits of its
    pHash **and** ``max_dhash`` bits of its dHash (64-bit hashes each).
    """

    stages: tuple[Path, ...]
    eval_sets: tuple[EvalSet, ...]
    out: Path
    max_phash: int = DEFAULT_MAX_PHASH
    max_dhash: int = DEFAULT_MAX_DHASH
    crops: bool = True
    flips: bool = True
    min_detail: float = 2.0  # std of the 32x32 grey thumbnail below which an image is too plain to compare
    clip_model: str | None = None  # an open_clip model name (e.g. ViT-B-32) turns on the embedding pass
    clip_pretrained: str = "openai"  # open_clip pretrained tag or a local checkpoint file
    min_clip_similarity: float = 0.95  # cosine similarity at or above which a pair is flagged
    device: str = "auto"  # auto | cpu | cuda (the embedding pass only)
    clip_batch_size: int = 128
    workers: int = 1
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(Path(s) for s in self.stages))
        object.__setattr__(self, "eval_sets", tuple(self.eval_sets))
        object.__setattr__(self, "out", Path(self.out))
        if not self.stages:
            raise ConfigError("janus dedup: give at least one STAGE_DIR (an image stage to check)")
        if not self.eval_sets:
            raise ConfigError("--eval: give at least one evaluation set (NAME=PATH)")
        names = [e.name for e in self.eval_sets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"--eval: the name {repeated[0]!r} is given twice; name each set differently")
        checks = (
            ("--max-phash", 0 <= self.max_phash < HASH_BITS // 2, f"0..{HASH_BITS // 2 - 1}"),
            ("--max-dhash", 0 <= self.max_dhash < HASH_BITS // 2, f"0..{HASH_BITS // 2 - 1}"),
            ("--min-detail", self.min_detail >= 0, "0 or more"),
            ("--workers", self.workers >= 1, "at least 1"),
            ("--min-clip-similarity", 0.0 < self.min_clip_similarity <= 1.0, "in (0, 1]"),
            ("--device", self.device in DEVICES, " or ".join(DEVICES)),
            ("--clip-batch-size", self.clip_batch_size >= 1, "at least 1"),
        )
        for flag, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{flag}: expected {expected}, got {getattr(self, flag[2:].replace('-', '_'))!r}")


# Options that may change between a run and its resumption (they change no result).
VOLATILE_KEYS = ("workers", "overwrite", "out", "device", "clip_batch_size")
