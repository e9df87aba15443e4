"""The options of ``janus train``, with their defaults and checks in one place (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

from janus_build.errors import ConfigError

LOSSES = ("ce", "vl")
AUGMENTATIONS = ("simclr", "standard")
OPTIMIZERS = ("adamw", "sgd")
DECODERS = ("cpu", "gpu")
TEXT_TRANSFORMS = ("none", "scramble", "strip")
SHIFT_FIELDS = ("imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")

# Options that may change between a run and its --resume (they do not change the result);
# every other field is result-changing and must agree for a resume.
VOLATILE = ("workers", "device", "resume", "overwrite", "compile", "eval_every", "eval_batch_size", *SHIFT_FIELDS)
VOLATILE_KEYS = VOLATILE  # the name the stage directory is given


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``janus train`` (one field per CLI option; defaults follow the paper).

    Raises:
        ConfigError: an option outside its allowed values (checked on construction).
    """

    shards: tuple[str, ...]
    out: str
    arch: str = "resnet50"
    loss: str = "ce"
    augment: str = "simclr"
    labels: str | None = None  # default: the shards' manifest (config.labels), else in100
    epochs: int = 256
    batch_size: int = 256  # global: divided among torchrun processes
    lr: float | None = None  # default: 1e-3 (adamw) or 0.1 x batch/256 (sgd)
    optimizer: str = "adamw"
    weight_decay: float | None = None  # default: 0.05 (adamw) or 1e-4 (sgd)
    momentum: float = 0.9
    warmup_epochs: float = 5.0
    image_size: int = 224
    workers: int = 4
    shuffle_buffer: int = 2000
    decode: str = "cpu"  # cpu: PIL in loader workers; gpu: JPEG decode + augmentation on the device (nvJPEG)
    steps_per_epoch: int | None = None  # default: samples // batch_size
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True
    grad_clip: float | None = None  # the paper uses none
    label_smoothing: float = 0.0
    multi_label: bool = False  # --loss ce: the sum of the CE of every class in a sample's `labels` (mc)
    text_transform: str = "none"  # --loss vl: scramble (shuffle caption words) | strip (keep class-name words)
    jpeg_quality: int | None = None  # re-encode every training image at this JPEG quality first (jpeg10)
    eval_every: int = 32
    eval_batch_size: int = 256
    imagenet_val: str | None = None
    imagenet_v2: str | None = None
    imagenet_sketch: str | None = None
    imagenet_r: str | None = None
    imagenet_a: str | None = None
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", tuple(self.shards))
        for flag, value, allowed in (
            ("--loss", self.loss, LOSSES),
            ("--augment", self.augment, AUGMENTATIONS),
            ("--decode", self.decode, DECODERS),
            ("--optimizer", self.optimizer, OPTIMIZERS),
            ("--text-transform", self.text_transform, TEXT_TRANSFORMS),
        ):
            if value not in allowed:
                raise ConfigError(f"{flag}: expected one of {', '.join(allowed)}, got {value!r}")
        checks = (
            (self.epochs >= 1, f"--epochs: must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size: must be at least 1, got {self.batch_size}"),
            (self.eval_every >= 1, f"--eval-every: must be at least 1, got {self.eval_every}"),
            (self.eval_batch_size >= 1, f"--eval-batch-size: must be at least 1, got {self.eval_batch_size}"),
            (self.image_size >= 16, f"--image-size: must be at least 16, got {self.image_size}"),
            (self.workers >= 0, f"--workers: must be 0 or more, got {self.workers}"),
            (self.warmup_epochs >= 0, f"--warmup-epochs: must be 0 or more, got {self.warmup_epochs}"),
            (
                0 <= self.label_smoothing < 1,
                f"--label-smoothing: must be in [0, 1), got {self.label_smoothing}",
            ),
            (self.lr is None or self.lr > 0, f"--lr: must be positive, got {self.lr}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, "--steps-per-epoch: must be at least 1"),
            (not self.multi_label or self.loss == "ce", "--multi-label: needs --loss ce (it sums CE over the labels)"),
            (self.text_transform == "none" or self.loss == "vl", "--text-transform: needs --loss vl (captions)"),
            (
                self.jpeg_quality is None or 1 <= self.jpeg_quality <= 95,
                f"--jpeg-quality: expected 1 to 95, got {self.jpeg_quality}",
            ),
            (
                self.jpeg_quality is None or self.decode == "cpu",
                "--jpeg-quality: needs --decode cpu (the re-encoding runs in PIL in the loader workers)",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def eval_folders(self) -> dict[str, str]:
        """``{shift: folder}`` of the evaluation folders given."""
        return {s: getattr(self, s) for s in SHIFT_FIELDS if getattr(self, s)}

    @property
    def learning_rate(self) -> float:
        """``--lr``, or its default for the optimizer (1e-3 AdamW; 0.1 x batch/256 SGD)."""
        return self.lr or (1e-3 if self.optimizer == "adamw" else 0.1 * self.batch_size / 256)

    @property
    def decay(self) -> float:
        """``--weight-decay``, or its default for the optimizer (0.05 AdamW; 1e-4 SGD)."""
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.05 if self.optimizer == "adamw" else 1e-4
