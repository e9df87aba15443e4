"""The labelling models: zero-shot open_clip (prompt ensembles) and timm ImageNet classifiers.

Both give, for a batch of images, probabilities over the label set's classes (softmax over
just those classes), so ``label`` is the arg-max and ``confidence`` its probability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, MissingResourceError

log = logging.getLogger(__name__)

SINGLE_TEMPLATE = "a photo of a {}."
TINY = "tiny"  # a tiny random CLIP for tests and demos (janus_build.train.models.TINY_CLIP)


def templates(prompts: str) -> list[Callable[[str], str]]:
    """The prompt templates: OpenAI's 80 ImageNet ones (open_clip ships them), one, or a file's."""
    if prompts == "openai":
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

        return list(OPENAI_IMAGENET_TEMPLATES)
    if prompts == "single":
        return [SINGLE_TEMPLATE.format]
    lines = [line.strip() for line in Path(prompts).read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [n for n, line in enumerate(lines, 1) if line.count("{}") != 1]
    if not lines or bad:
        raise ConfigError(f"--prompts {prompts}: every line must hold exactly one '{{}}' (line {bad[0] if bad else 1})")
    return [line.format for line in lines]


@dataclass
class Labeller:
    """A model that scores images against the label set's classes."""

    transform: Callable[[Any], Any]  # PIL image -> CHW tensor
    scores: Callable[[Any], Any]  # NCHW tensor -> N x classes probabilities
    device: Any


def zero_shot_head(model: Any, tokenizer: Any, class_names: Sequence[str], prompts: str, device: Any) -> Any:
    """Normalised, prompt-averaged text embeddings (D x classes): the zero-shot classifier."""
    from open_clip import build_zero_shot_classifier

    return build_zero_shot_classifier(model, tokenizer, list(class_names), templates(prompts), device=device)


def zero_shot_labeller(
    model: Any, tokenizer: Any, transform: Any, class_names: Sequence[str], prompts: str, device: Any
) -> Labeller:
    """A labeller from open_clip towers (any object with ``encode_image`` / ``encode_text``)."""
    import torch

    device = torch.device(device)
    model = model.to(device).eval()
    head = zero_shot_head(model, tokenizer, class_names, prompts, device)
    with torch.no_grad():
        scale = float(model.logit_scale.exp()) if hasattr(model, "logit_scale") else 100.0

    def scores(images: Any) -> Any:
        with torch.no_grad():
            features = torch.nn.functional.normalize(model.encode_image(images.to(device)).float(), dim=-1)
            return (scale * features @ head.float()).softmax(dim=-1)

    return Labeller(transform, scores, device)


def _open_clip_parts(name: str, pretrained: str, device: Any) -> tuple[Any, Any, Any]:
    import open_clip

    if name == TINY:
        from open_clip.tokenizer import SimpleTokenizer
        from open_clip.transform import image_transform

        from janus_build.train.models import TINY_CLIP, _tiny_clip

        size = TINY_CLIP["vision_cfg"]["image_size"]
        tokenizer = SimpleTokenizer(context_length=TINY_CLIP["text_cfg"]["context_length"])
        return _tiny_clip(size), tokenizer, image_transform(size, is_train=False)
    if name not in open_clip.list_models():
        raise ConfigError(f"--model open_clip:{name}: open_clip has no such model (see open_clip.list_models())")
    tag = None if pretrained == "none" else pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag, device=device)
    except RuntimeError as exc:  # unknown tag, or weights not downloadable here
        raise MissingResourceError(f"--model open_clip:{name} --pretrained {pretrained}: {exc}") from None
    return model, open_clip.get_tokenizer(name), preprocess


def _timm_labeller(name: str, pretrained: str, head_ids: Sequence[int], device: Any) -> Labeller:
    import timm
    import torch

    kwargs: dict[str, Any] = {}
    if pretrained not in ("none", "hub"):
        kwargs["pretrained_cfg_overlay"] = {"file": str(Path(pretrained).resolve())}
    try:
        model = timm.create_model(name, pretrained=pretrained != "none", **kwargs)
    except RuntimeError as exc:
        raise MissingResourceError(f"--model timm:{name} --pretrained {pretrained}: {exc}") from None
    too_big = [c for c in head_ids if c >= model.num_classes]
    if too_big:
        raise ConfigError(
            f"--model timm:{name} has {model.num_classes} classes; the label set names class {too_big[0]}"
        )
    model = model.to(device).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    index = torch.tensor(list(head_ids), device=device)

    def scores(images: Any) -> Any:
        with torch.no_grad():
            return model(images.to(device)).float().index_select(1, index).softmax(dim=-1)

    return Labeller(transform, scores, device)


def load_labeller(config: Any, head_ids: Sequence[int], class_names: Sequence[str], device: Any) -> Labeller:
    """The labeller ``config.model`` names (weights through the libraries' own loading)."""
    if config.kind == "timm":
        return _timm_labeller(config.model_name, config.pretrained, head_ids, device)
    model, tokenizer, transform = _open_clip_parts(config.model_name, config.pretrained, device)
    return zero_shot_labeller(model, tokenizer, transform, class_names, config.prompts, device)
