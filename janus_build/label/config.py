"""Options of ``janus label`` (light: no heavy imports)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from janus_build.errors import ConfigError

MODEL_KINDS = ("open_clip", "timm")
PROMPT_SETS = ("openai", "single")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Options that may change when a run is resumed: they change speed, not labels.
VOLATILE = ("out", "batch_size", "workers", "device", "overwrite")


@dataclass(frozen=True)
class LabelConfig:
    """Args:
    stage_dir: any stage directory with images (an import, a fetch output, a caption output).
    out: the output stage directory.
    model: ``open_clip:NAME`` (zero-shot; ViT-L-14 is the paper's) or ``timm:NAME`` (an
        ImageNet-1k classifier, e.g. ``timm:swin_base_patch4_window7_224``).
    pretrained: open_clip's pretrained tag (``openai``, ``laion2b_s32b_b82k``, ...) or, for timm,
        ``hub`` (timm's own weights) / a local weights file; ``none`` for random weights (tests).
    prompts: ``openai`` (the 80 ImageNet templates, averaged), ``single`` ("a photo of a {}.")
        or a text file with one template per line, each holding ``{}``.
    labels: the label set (``in100``, ``in1k`` or a TSV file).
    threshold: a prediction whose probability (softmax over the label set) is below this
        gets ``label = -1``.
    truth_col: a ground-truth class column of the image index, for label accuracy.
    """

    stage_dir: Path
    out: Path
    model: str = "open_clip:ViT-L-14"
    pretrained: str = "openai"
    prompts: str = "openai"
    labels: str = "in100"
    threshold: float = 0.0
    truth_col: str | None = None
    batch_size: int = 64
    workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    overwrite: bool = False

    def __post_init__(self) -> None:
        kind, _, name = self.model.partition(":")
        if kind not in MODEL_KINDS or not name:
            raise ConfigError(f"--model {self.model!r}: expected open_clip:NAME or timm:NAME")
        if not (0.0 <= self.threshold < 1.0) or math.isnan(self.threshold):
            raise ConfigError(f"--threshold {self.threshold}: expected a probability in [0, 1)")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: expected a positive integer")
        if self.workers < 0:
            raise ConfigError(f"--workers {self.workers}: expected 0 or more")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)} or cuda:N")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if kind == "open_clip" and self.prompts not in PROMPT_SETS and not Path(self.prompts).is_file():
            raise ConfigError(f"--prompts {self.prompts!r}: expected openai, single or a template file")

    @property
    def kind(self) -> str:
        return self.model.partition(":")[0]

    @property
    def model_name(self) -> str:
        return self.model.partition(":")[2]

    @property
    def label_source(self) -> str:
        """The ``label_source`` recorded on every row, e.g. ``zeroshot:ViT-L-14`` (the paper's cliplabel)."""
        return f"{'zeroshot' if self.kind == 'open_clip' else 'classifier'}:{self.model_name}"
