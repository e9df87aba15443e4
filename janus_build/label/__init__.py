"""``janus label``: model labels for an image stage (zero-shot CLIP or a pretrained classifier).

The paper's ``cliplabel`` and ``swinlabel`` training sets take their integer labels from a
model instead of people: CLIP ViT-L-14 zero-shot with OpenAI's 80 ImageNet prompt templates,
or a Swin classifier. See docs/label.md.
"""

from janus_build.label.config import LabelConfig

__all__ = ["LabelConfig", "run_label"]


def run_label(config: LabelConfig, progress=None):
    """Label every image of ``config.stage_dir`` (see :func:`janus_build.label.run.run`)."""
    from janus_build.label.run import run
    from janus_build.progress import NULL_PROGRESS

    return run(config, progress or NULL_PROGRESS)
