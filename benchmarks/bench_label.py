"""Throughput of ``janus label`` (images/s): zero-shot open_clip over an image stage.

CPU (default): the tiny random CLIP, for a quick harness check.
GPU (the figure the paper's cliplabel needs; run on a machine with CUDA and the weights cached):

    python -m benchmarks.bench_label --device cuda --model open_clip:ViT-L-14 --pretrained openai \
        --precision bf16 --images 20000 --batch-size 512 --workers 16

Reports the median of --repeats runs with the machine load, and the loader-only rate measured
in the same run (images decoded and preprocessed, no model) as the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _stage(root: Path, images: int) -> Path:
    from janus_build.core.shards import ImageShardWriter
    from janus_build.demo.images import class_image

    directory = root / "images"
    per_shard = 1000
    for shard in range((images + per_shard - 1) // per_shard):
        with ImageShardWriter(directory, f"{shard:05d}", mtime=0) as writer:
            for i in range(shard * per_shard, min(images, (shard + 1) * per_shard)):
                writer.write(f"img-{i}", class_image(i % 100, i, size=256), {"label": i % 100})
    return directory


def _loader_only(directory: Path, workers: int, batch_size: int) -> float:
    import torch
    from open_clip.transform import image_transform

    from janus_build.core.shards import find_tar_shards
    from janus_build.label.run import _collate, _Images, _items

    transform = image_transform(224, is_train=False)
    start, count = time.perf_counter(), 0
    for shard in find_tar_shards(directory):
        items = _items(shard, None)
        loader = torch.utils.data.DataLoader(
            _Images(shard.tar, items, transform), batch_size=batch_size, num_workers=workers, collate_fn=_collate
        )
        for positions, _images, _bad in loader:
            count += len(positions)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="open_clip:tiny")
    parser.add_argument("--pretrained", default="none")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from janus_build.label.config import LabelConfig
    from janus_build.label.run import run
    from janus_build.progress import NULL_PROGRESS

    with tempfile.TemporaryDirectory() as tmp:
        directory = _stage(Path(tmp), args.images)
        rates, baselines = [], []
        for repeat in range(args.repeats):
            baselines.append(_loader_only(directory, args.workers, args.batch_size))
            config = LabelConfig(
                stage_dir=directory,
                out=Path(tmp) / f"out{repeat}",
                model=args.model,
                pretrained=args.pretrained,
                prompts="single" if "tiny" in args.model else "openai",
                batch_size=args.batch_size,
                workers=args.workers,
                device=args.device,
                precision=args.precision,
            )
            start = time.perf_counter()
            run(config, NULL_PROGRESS)
            rates.append(args.images / (time.perf_counter() - start))
    load = os.getloadavg()[0]
    print(
        f"label {args.model} on {args.device}: median {statistics.median(rates):,.0f} images/s over {args.repeats} "
        f"runs (all: {', '.join(f'{r:,.0f}' for r in rates)}); loader alone {statistics.median(baselines):,.0f} images/s; "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
