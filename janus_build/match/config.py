"""The options of ``janus match``, with their defaults and checks in one place (light imports)."""

from __future__ import annotations

import dataclasses

from janus_build.errors import ConfigError

STRATEGIES = ("sc", "strict", "mc")
ENGINES = ("local", "spark")
DEFAULT_TEXT_COLS = ("TEXT", "caption")
PACK_BYTES = 16 << 20  # a packed shard holds at most about this many bytes of decoded input
# Options that never change a shard's content: a resume may change them freely.
VOLATILE = (
    "workers",
    "overwrite",
    "skip_bad_inputs",
    "min_label_accuracy",
    "min_utilization",
    "plot",
    "batch_size",
    "batch_bytes",
    "engine",
    "spark_master",
)


@dataclasses.dataclass(frozen=True)
class MatchConfig:
    """Options of :func:`janus_build.match.run_match`; the CLI flags map onto them one to one.

    Inputs and ``out`` are local paths or URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``).
    ``key_root`` pins the directory input keys are relative to (default: the deepest directory
    holding every input); ``key_col`` takes each row's key from that column instead.
    """

    inputs: tuple[str, ...]
    out: str
    strategy: str = "sc"
    labels: str = "in100"
    classnames: str = "openai"
    text_cols: tuple[str, ...] = ()  # empty: TEXT if present, else caption
    truth_col: str | None = None
    key_col: str | None = None
    key_root: str | None = None
    min_label_accuracy: float | None = None
    min_utilization: float | None = None
    max_ngram: int = 3
    max_caption_chars: int = 100_000  # longer captions are counted as too_long, not matched
    batch_size: int = 65_536  # rows per record batch, at most ...
    batch_bytes: int = 8 << 20  # ... and about this many bytes of decoded input per batch (peak RSS ~10x this)
    # Inputs under this many rows (and PACK_BYTES) are packed, consecutive and with the same
    # columns, into one shard of up to this many rows; 0: one shard per input file.
    pack_rows: int = 65_536
    workers: int = 1
    engine: str = "local"
    spark_master: str | None = None
    skip_bad_inputs: bool = False
    overwrite: bool = False
    plot: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        object.__setattr__(self, "text_cols", tuple(self.text_cols))
        object.__setattr__(self, "out", str(self.out))
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.spark_master and self.engine != "spark":
            raise ConfigError("--spark-master needs --engine spark")
        checks = (
            ("--workers", self.workers >= 1, "at least 1"),
            ("--max-ngram", 1 <= self.max_ngram <= 6, "between 1 and 6"),
            ("--batch-size", self.batch_size >= 1, "at least 1"),
            ("--batch-bytes", self.batch_bytes >= 1 << 16, "at least 65536"),
            ("--pack-rows", self.pack_rows >= 0, "0 (no packing) or more"),
            ("--max-caption-chars", self.max_caption_chars >= 1, "at least 1"),
        )
        for flag, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{flag}: must be {expected}, got {getattr(self, flag[2:].replace('-', '_'))}")
        for flag, value in (
            ("--min-label-accuracy", self.min_label_accuracy),
            ("--min-utilization", self.min_utilization),
        ):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{flag}: must be between 0 and 1, got {value}")
        if self.min_label_accuracy is not None and not self.truth_col:
            raise ConfigError("--min-label-accuracy needs --truth-col (accuracy is measured against ground truth)")
        if not self.inputs:
            raise ConfigError("no INPUT given: pass parquet files, directories or globs")

    def validate(self) -> None:
        """Kept for callers of the earlier API: the checks run in ``__post_init__``."""
