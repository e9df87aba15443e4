"""Baselines for ``janus eval --baseline``: open_clip zero-shot (any model, pretrained tag and prompt
ensemble) and timm classifiers, scored on the same restricted label set as janus-trained models.

The models come from :mod:`janus_build.label.models` (one zero-shot implementation for labelling
and for baselines): a :class:`~janus_build.label.models.Labeller` gives, per image, probabilities
over the label set's classes, wrapped here as a network whose outputs are the log-probabilities
over those classes (the head ``janus eval`` restricts per shift, as for a trained checkpoint).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from janus_build.errors import ConfigError

BASELINE_KINDS = ("open_clip", "timm")


def check_baseline(baseline: str) -> None:
    """``--baseline`` must be ``open_clip:NAME`` or ``timm:NAME``."""
    kind, sep, name = baseline.partition(":")
    if kind not in BASELINE_KINDS or not sep or not name:
        raise ConfigError(f"--baseline {baseline!r}: expected open_clip:NAME (e.g. open_clip:RN50) or timm:NAME")


def baseline_model(
    baseline: str, pretrained: str, prompts: str, label_set: Any, device: Any, labeller: Any = None
) -> tuple[Any, Any, dict[str, Any], Any]:
    """``(model, spec, info, eval transform)`` of a baseline over ``label_set``'s classes.

    ``labeller`` replaces the loaded model (tests with known answers).
    """
    import torch

    from janus_build.label.models import load_labeller
    from janus_build.train.models import ModelSpec

    check_baseline(baseline)
    kind, _, name = baseline.partition(":")
    head_ids = tuple(label_set.ids)
    names = [label_set.names[c] for c in head_ids]
    if labeller is None:
        options = SimpleNamespace(kind=kind, model_name=name, pretrained=pretrained, prompts=prompts)
        labeller = load_labeller(options, head_ids, names, device)

    class _Scores(torch.nn.Module):
        def forward(self, images: Any) -> Any:
            return labeller.scores(images).clamp_min(1e-12).log()

    spec = ModelSpec(arch=baseline, loss="ce", head_ids=head_ids, image_size=224)
    info = {"baseline": baseline, "pretrained": pretrained, "prompts": prompts if kind == "open_clip" else None}
    return _Scores(), spec, info, labeller.transform
