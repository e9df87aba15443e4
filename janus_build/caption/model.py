"""Loading BLIP and generating captions in batches."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from janus_build.caption.config import CaptionConfig
from janus_build.caption.decode import normalize_pixels
from janus_build.errors import ConfigError, MissingResourceError

log = logging.getLogger(__name__)


def resolve_device(device: str, local_rank: int | None = None) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; under torchrun (``local_rank``
    given) a GPU is ``cuda:LOCAL_RANK``, this process's own.

    Raises:
        ConfigError: ``--device cuda`` without a usable GPU.
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available to torch (use --device cpu or auto)")
    if device == "cuda" and local_rank is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"torchrun local rank {local_rank}: only {torch.cuda.device_count()} GPU(s) visible; "
                "start at most that many processes per node"
            )
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return device


def resolve_dtype(precision: str, device: str) -> Any:
    """``auto`` -> bf16 on a GPU that supports it (fp16 otherwise), fp32 on the CPU."""
    import torch

    if precision == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision == "fp16" and device == "cpu":
        raise ConfigError("--precision fp16: not supported on the CPU (use fp32 or bf16)")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class Captioner:
    """A BLIP captioning model with its processor, ready to caption batches of pixel tensors.

    Args:
        model: a ``BlipForConditionalGeneration``.
        processor: its ``BlipProcessor`` (image processor + tokenizer).
        config: generation settings (and the prompt).
        device: ``cpu`` or ``cuda`` (resolved).
        dtype: the torch dtype the model runs in.
    """

    def __init__(self, model: Any, processor: Any, config: CaptionConfig, device: str, dtype: Any) -> None:
        import torch

        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.image_processor = processor.image_processor
        self.tokenizer = processor.tokenizer
        self.config = config
        self.device = device
        self.dtype = dtype
        self.generate_kwargs = config.generate_kwargs()
        self.prompt = config.prompt
        self._prompt_ids = None
        if self.prompt:
            # [CLS] prompt [SEP]; generate() drops the [SEP] and swaps [CLS] for BLIP's [DEC],
            # so every output starts with len - 1 prompt tokens, which are cut off (by token, not
            # by text: a first word glued to the prompt by a word piece stays whole).
            self._prompt_ids = self.tokenizer(self.prompt, return_tensors="pt")["input_ids"].to(device)
        self._torch = torch

    def generate(self, pixel_values: Any, seed: int | None = None) -> list[str]:
        """Captions for a batch of images (``[B, 3, H, W]``: resized uint8 from the loader, or
        already normalised floats), prompt removed."""
        torch = self._torch
        if seed is not None:
            torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
        pixel_values = normalize_pixels(pixel_values, self.image_processor, self.device, self.dtype)
        kwargs = dict(self.generate_kwargs)
        if self._prompt_ids is not None:
            kwargs["input_ids"] = self._prompt_ids.repeat(pixel_values.shape[0], 1)
        with torch.inference_mode():
            output = self.model.generate(pixel_values=pixel_values, **kwargs)
        if self._prompt_ids is not None:
            output = output[:, self._prompt_ids.shape[1] - 1 :]
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        # A caption may open with a word piece that continued the prompt's last word.
        return [text.strip().removeprefix("##") for text in texts]


def _missing_weights_message(name: str, exc: BaseException) -> str:
    return (
        f"--model {name}: cannot load the BLIP model or its processor ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        f"Without network access, download it once elsewhere with `hf download {name}` (huggingface_hub's CLI; older releases: `huggingface-cli download`) "
        "(it lands in the Hugging Face cache, ~/.cache/huggingface; copy that over or set HF_HOME), "
        "or save it to a folder and pass --model LOCAL_DIR"
        if not Path(name).exists()
        else f"--model {name}: the directory does not hold a loadable BLIP captioning model and processor "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); it needs config.json, the weights, "
        "preprocessor_config.json and the tokenizer files (as written by save_pretrained)"
    )


def _from_pretrained(name: str, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(name, local_files_only=local_files_only)
    model = BlipForConditionalGeneration.from_pretrained(name, local_files_only=local_files_only)
    return processor, model


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False


def _is_loading_error(exc: BaseException) -> bool:
    """Missing files, no network, unknown repository: what a missing model looks like."""
    if isinstance(exc, (OSError, ValueError)):
        return True
    return type(exc).__module__.split(".")[0] in ("huggingface_hub", "httpx", "requests", "urllib3")


def load_captioner(config: CaptionConfig, local_rank: int | None = None) -> Captioner:
    """Load ``config.model`` (hub name or local directory) with ``from_pretrained``.

    Raises:
        MissingResourceError: the weights or processor cannot be found or downloaded.
        ConfigError: the device or precision cannot be used.
    """
    device = resolve_device(config.device, local_rank)
    dtype = resolve_dtype(config.precision, device)
    local = Path(config.model).is_dir()
    if not local and (config.model.startswith((".", "/", "~")) or config.model.count("/") > 1):
        raise MissingResourceError(f"--model {config.model}: no such directory (and not a Hugging Face model name)")
    try:
        # The cache first: no network round trip when the model is already there.
        processor, model = _from_pretrained(config.model, local_files_only=True)
    except Exception as exc:
        if local or _offline() or not _is_loading_error(exc):
            if _is_loading_error(exc):
                raise MissingResourceError(_missing_weights_message(config.model, exc)) from None
            raise
        try:
            processor, model = _from_pretrained(config.model, local_files_only=False)
        except Exception as exc2:
            if _is_loading_error(exc2):
                raise MissingResourceError(_missing_weights_message(config.model, exc2)) from None
            raise
    log.info("loaded %s on %s (%s)", config.model, device, str(dtype).replace("torch.", ""))
    return Captioner(model, processor, config, device, dtype)
