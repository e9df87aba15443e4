"""Generated JANuS-style shards and evaluation folders (learnable synthetic classes) for tests,
benchmarks and the offline demo. Built on :func:`janus_build.demo.images.class_image`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from janus_build.core.fsio import atomic_write_json

# IN100 classes present in ImageNet-V2/Sketch and in both ImageNet-R and ImageNet-A.
DEMO_CLASSES = (6, 13, 22, 23, 76, 99)
SHIFT_STYLES = {
    "imagenet_val": "photo",
    "imagenet_v2": "photo",
    "imagenet_sketch": "sketch",
    "imagenet_r": "rendition",
    "imagenet_a": "adversarial",
}


def write_synthetic_shards(
    out: str | os.PathLike[str],
    class_ids: Sequence[int] = DEMO_CLASSES,
    per_class: int = 40,
    *,
    size: int = 48,
    shards: int = 2,
    labels: str = "in100",
    split: str = "train",
    start_index: int = 0,
) -> Path:
    """Write ``out/<split>/NNNNN.tar`` (+ parquet index) and ``out/manifest.json`` like ``janus balance``.

    Samples carry ``jpg``, ``cls`` (the class id), ``txt`` (a caption naming the class) and
    ``json``. Returns the split directory.
    """
    from janus_build.core.shards import ImageShardWriter
    from janus_build.core.stage import shard_name
    from janus_build.demo.images import class_image
    from janus_build.labels import load_label_set

    names = load_label_set("in1k").names
    directory = Path(out) / split
    samples = [(c, i) for i in range(start_index, start_index + per_class) for c in class_ids]
    for n in range(shards):
        with ImageShardWriter(directory, shard_name(n)) as writer:
            for class_id, index in samples[n::shards]:
                name = names.get(class_id, f"class {class_id}")
                writer.write(
                    f"syn-{class_id}-{index}",
                    class_image(class_id, index, size=size),
                    {
                        "label": class_id,
                        "caption": f"a photo of a {name}",
                        "source": "custom",
                        "label_source": "ground_truth",
                        "split": split,
                    },
                    extra={"cls": str(class_id), "txt": f"a photo of a {name}"},
                )
    atomic_write_json(
        Path(out) / "_manifest.json", {"stage": "balance", "config": {"labels": labels}, "synthetic": True}
    )
    return directory


def write_synthetic_shift_folders(
    root: str | os.PathLike[str],
    class_ids: Sequence[int] = DEMO_CLASSES,
    per_class: int = 10,
    *,
    size: int = 48,
    shifts: Sequence[str] = tuple(SHIFT_STYLES),
) -> dict[str, str]:
    """Write evaluation folders in the real datasets' layouts under ``root``; returns {shift: path}.

    val / Sketch / R / A use wnid folders, V2 uses ImageNet-index folders; R and A only get the
    classes those datasets have. Images use a style per shift (sketch, rendition, adversarial)
    and sample indices disjoint from the training shards'.
    """
    from janus_build.demo.images import class_image
    from janus_build.labels import load_label_set
    from janus_build.train.evaluate import shift_classes

    wnids = load_label_set("in1k").wnids
    paths = {}
    for shift in shifts:
        covered = shift_classes(shift)
        base = Path(root) / shift
        for class_id in class_ids:
            if covered is not None and class_id not in covered:
                continue
            folder = base / (str(class_id) if shift == "imagenet_v2" else wnids[class_id])
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                data = class_image(class_id, 100_000 + index, size=size, style=SHIFT_STYLES[shift])
                (folder / f"{index:05d}.jpg").write_bytes(data)
        paths[shift] = os.fspath(base)
    return paths
