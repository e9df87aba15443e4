"""The options of ``janus caption``, with their defaults in one place."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from janus_build.errors import ConfigError

DEFAULT_MODEL = "Salesforce/blip-image-captioning-base"
# BLIP's own captioning code (salesforce/BLIP, models/blip.py) conditions the decoder on this
# prompt and strips it from the output; it also keeps BLIP-base from opening with "arafed".
DEFAULT_PROMPT = "a picture of "
# Columns recognised as a human-written caption when --human-caption-col is not given.
HUMAN_CAPTION_COLUMNS = ("human_caption", "localized_narrative", "narrative")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclasses.dataclass(frozen=True)
class CaptionConfig:
    """Options of :func:`janus_build.caption.run_caption`; the CLI options map onto them one to one.

    The generation defaults are the paper's (nucleus sampling, top_p 0.9, max length 40, min
    length 5, repetition penalty 1.1). ``top_k`` 50 is what BLIP's code got from transformers'
    defaults when it sampled; 0 turns it off (pure nucleus sampling).
    """

    stage_dir: Path
    out: Path
    model: str = DEFAULT_MODEL
    prompt: str = DEFAULT_PROMPT
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 32
    num_workers: int = 4
    seed: int = 0
    num_beams: int = 1  # > 1: beam search (deterministic) instead of nucleus sampling
    top_p: float = 0.9
    top_k: int = 50
    max_length: int = 40
    min_length: int = 5
    repetition_penalty: float = 1.1
    title_col: str = "title"
    human_caption_col: str | None = None  # None: the first of HUMAN_CAPTION_COLUMNS present
    classnames: str = "openai"  # term set whose words the spell checker never corrects
    spellcheck: bool = True
    max_image_pixels: int = 250_000_000  # decoded pixels (after JPEG draft scaling); larger -> image_too_large
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"--device: expected one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        checks = (
            ("--batch-size", self.batch_size >= 1, "at least 1"),
            ("--num-workers", self.num_workers >= 0, "0 or more"),
            ("--num-beams", self.num_beams >= 1, "at least 1"),
            ("--top-p", 0.0 < self.top_p <= 1.0, "in (0, 1]"),
            ("--top-k", self.top_k >= 0, "0 or more"),
            ("--min-length", self.min_length >= 0, "0 or more"),
            ("--max-length", self.max_length >= max(1, self.min_length), "at least 1 and at least --min-length"),
            ("--repetition-penalty", self.repetition_penalty > 0, "above 0"),
            ("--max-image-pixels", self.max_image_pixels >= 1, "at least 1"),
        )
        for flag, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{flag}: expected {expected}, got {getattr(self, flag[2:].replace('-', '_'))!r}")

    @property
    def sampling(self) -> bool:
        return self.num_beams == 1

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``BlipForConditionalGeneration.generate``."""
        kwargs = {
            "max_length": self.max_length,
            "min_length": self.min_length,
            "repetition_penalty": self.repetition_penalty,
            "num_beams": self.num_beams,
            "do_sample": self.sampling,
        }
        if self.sampling:
            kwargs.update(top_p=self.top_p, top_k=self.top_k)
        return kwargs


# Options that may change between a run and its resumption (they do not change any caption);
# every other field is result-changing and must agree for a resume.
VOLATILE = ("num_workers", "overwrite", "out")
VOLATILE_KEYS = VOLATILE  # the name the stage directory is given
