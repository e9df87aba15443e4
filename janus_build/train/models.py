"""Architectures for ``janus train``: timm / torchvision classifiers (``--loss ce``) and open_clip
image-text models (``--loss vl``).

A :class:`ModelSpec` (architecture, loss, head classes, image size) is stored in every checkpoint,
so ``janus eval`` rebuilds exactly the network that was trained.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from janus_build.errors import ConfigError, InputError
from janus_build.train.config import LOSSES

log = logging.getLogger(__name__)


# --loss ce: short names -> timm model names (any "timm:NAME" or "torchvision:NAME" also works).
CE_ARCHS = {
    "resnet50": "resnet50",
    "resnet26": "resnet26",
    "rn50x4": "resnet50x4_clip_gap",  # CLIP's RN50x4 scaling (wider, deeper ResNet) with a pooled linear head
    "vit_small_patch16_224": "vit_small_patch16_224",
    "deit_small": "deit_small_patch16_224",
    "convnext_tiny": "convnext_tiny",
    "gcvit_xxtiny": "gcvit_xxtiny",
    # the paper's names (Table 9)
    "RN50": "resnet50",
    "RN26": "resnet26",
    "RN50x4": "resnet50x4_clip_gap",
    "ViT-S-16": "vit_small_patch16_224",
    "DeiT-S-16": "deit_small_patch16_224",
    "GCViT-S-16": "gcvit_small",
    "tiny": "test_resnet",  # a ~0.4 M-parameter ResNet for tests and demos
    "tiny_vit": "test_vit",
}

# --loss vl: short names -> open_clip model configs ("open_clip:NAME" for any other).
VL_ARCHS = {
    "resnet50": "RN50",
    "rn50": "RN50",
    "rn50x4": "RN50x4",
    "RN50": "RN50",  # open_clip's modified ResNets (attention pooling), the paper's VL towers
    "RN101": "RN101",
    "RN50x4": "RN50x4",
    "ViT-S-16": "ViT-S-16",
    "ViT-B-16": "ViT-B-16",
    "tiny": "tiny",
}

# A tiny CLIP (ModifiedResNet image tower + 1-layer text transformer) for tests and demos.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"layers": [1, 1, 1, 1], "width": 8, "image_size": 64},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@dataclass(frozen=True)
class ModelSpec:
    """What to build: ``arch`` (a short name, ``timm:NAME``, ``torchvision:NAME`` or ``open_clip:NAME``),
    ``loss`` (ce | vl), the class ids the head predicts (ImageNet-1k indices), and the image size."""

    arch: str
    loss: str = "ce"
    head_ids: tuple[int, ...] = field(default_factory=lambda: tuple(range(1000)))
    image_size: int = 224
    text_transform: str = "none"  # vl: "scramble" also scrambles the zero-shot prompts (tokscramble)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["head_ids"] = list(self.head_ids)
        if self.text_transform == "none":  # checkpoints written before the field existed compare equal
            del data["text_transform"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            arch=str(data["arch"]),
            loss=str(data["loss"]),
            head_ids=tuple(int(i) for i in data["head_ids"]),
            image_size=int(data["image_size"]),
            text_transform=str(data.get("text_transform", "none")),
        )


def _timm(name: str, num_classes: int, image_size: int, pretrained: bool = False) -> Any:
    import timm

    if name not in timm.list_models(pretrained=False) and name not in timm.list_models(pretrained=True):
        raise ConfigError(f"--arch: timm has no model {name!r}")
    try:
        return timm.create_model(name, num_classes=num_classes, img_size=image_size, pretrained=pretrained)
    except TypeError:  # convolutional models take no img_size
        return timm.create_model(name, num_classes=num_classes, pretrained=pretrained)


def _torchvision(name: str, num_classes: int) -> Any:
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    except ValueError as exc:
        raise ConfigError(f"--arch torchvision:{name}: {exc}") from None


def _open_clip_name(arch: str) -> str:
    if arch.startswith("open_clip:"):
        return arch.split(":", 1)[1]
    if arch in VL_ARCHS:
        return VL_ARCHS[arch]
    raise ConfigError(f"--arch {arch!r} with --loss vl: expected one of {', '.join(VL_ARCHS)} or open_clip:NAME")


def _tiny_clip(image_size: int) -> Any:
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision = dict(TINY_CLIP["vision_cfg"], image_size=image_size)
    vision["layers"] = tuple(vision["layers"])  # a tuple of stage depths selects the ModifiedResNet tower
    return open_clip.CLIP(TINY_CLIP["embed_dim"], CLIPVisionCfg(**vision), CLIPTextCfg(**TINY_CLIP["text_cfg"]))


def build_model(spec: ModelSpec) -> Any:
    """Build the (randomly initialised) network for ``spec``.

    Raises:
        ConfigError: unknown architecture or loss.
    """
    if spec.loss not in LOSSES:
        raise ConfigError(f"--loss: expected one of {', '.join(LOSSES)}, got {spec.loss!r}")
    if spec.loss == "vl":
        name = _open_clip_name(spec.arch)
        if name == "tiny":
            return _tiny_clip(spec.image_size)
        import open_clip

        if name not in open_clip.list_models():
            raise ConfigError(f"--arch open_clip:{name}: open_clip has no such model config")
        return open_clip.create_model(name, pretrained=None, force_image_size=spec.image_size)
    num_classes = len(spec.head_ids)
    if spec.arch.startswith("torchvision:"):
        return _torchvision(spec.arch.split(":", 1)[1], num_classes)
    if spec.arch.startswith("timm:"):
        return _timm(spec.arch.split(":", 1)[1], num_classes, spec.image_size)
    if spec.arch in CE_ARCHS:
        return _timm(CE_ARCHS[spec.arch], num_classes, spec.image_size)
    raise ConfigError(
        f"--arch: expected one of {', '.join(CE_ARCHS)}, timm:NAME or torchvision:NAME, got {spec.arch!r}"
    )


def tokenizer_for(spec: ModelSpec) -> Any:
    """The open_clip tokenizer of a VL model (bundled BPE vocabulary; nothing is downloaded)."""
    import open_clip

    name = _open_clip_name(spec.arch)
    if name == "tiny":
        from open_clip.tokenizer import SimpleTokenizer

        return SimpleTokenizer(context_length=TINY_CLIP["text_cfg"]["context_length"])
    return open_clip.get_tokenizer(name)


def normalization(spec: ModelSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the input normalisation (OpenAI's for CLIP models, ImageNet's otherwise)."""
    if spec.loss == "vl":
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        return tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)
    from janus_build.train.data import IMAGENET_MEAN, IMAGENET_STD

    return IMAGENET_MEAN, IMAGENET_STD


def load_weights(model: Any, state_dict: dict[str, Any], spec: ModelSpec, source: str) -> None:
    """Load ``state_dict`` strictly, turning a mismatch into a clear error.

    Raises:
        InputError: the weights belong to another architecture or head size.
    """
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state_dict.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} with other shapes (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise InputError(
            f"{source}: the weights do not fit --arch {spec.arch} (--loss {spec.loss}, {len(spec.head_ids)} classes): "
            + "; ".join(detail)
            + ". Was it trained with another architecture?"
        )
    model.load_state_dict(state, strict=True)


def zero_shot_weights(
    model: Any, spec: ModelSpec, class_names: Sequence[str], device: Any, template: str = "a photo of a {}."
) -> Any:
    """Normalised text embeddings of ``template`` for each class (a VL model's classifier).

    A model trained with ``--text-transform scramble`` gets scrambled prompts too (the paper's
    tokscramble scrambles "during training and inference"; a fixed order per class).
    """
    import torch

    tokenizer = tokenizer_for(spec)
    prompts = [template.format(name) for name in class_names]
    if spec.text_transform == "scramble":
        from janus_build.train.data import TextTransform

        scramble = TextTransform("scramble")
        prompts = [scramble(p, "inference") for p in prompts]
    with torch.no_grad():
        tokens = tokenizer(prompts).to(device)
        text = model.encode_text(tokens).float()
    return torch.nn.functional.normalize(text, dim=-1)
