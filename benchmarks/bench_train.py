"""Training throughput of ``janus train``: ResNet-50 at 224 px from webdataset shards.

Self-contained: it writes its own shards (synthetic JPEGs of ImageNet-like size) and measures,
in one run on one machine,

1. ``model only``       training steps on tensors already on the device (the model's ceiling);
2. ``loader, cpu decode`` the data loader alone: PIL decode + SimCLR augmentation in workers;
3. ``loader, bytes``    the data loader alone shipping JPEG bytes (for device decoding);
4. ``device decode``    nvJPEG batch decode + batched SimCLR on the device alone;
5. ``train, cpu decode`` end-to-end training steps fed by (2);
6. ``train, gpu decode`` end-to-end training steps fed by (3) + (4).

Every figure is images/s and is also given as a fraction of (1). Depends only on torch,
torchvision, timm, webdataset, pillow, numpy and janus_build.

    python benchmarks/bench_train.py                      # CPU, small
    python benchmarks/bench_train.py --device cuda --images 8192 --batch-size 256 --steps 60 --workers 12
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_shards(directory: Path, images: int, side: int, per_shard: int) -> None:
    """Shards of ``images`` JPEGs (~side x 0.8 side, quality 90, like ImageNet's ~110 kB photos)."""
    from PIL import Image

    from janus_build.core.shards import ImageShardWriter

    rng = np.random.default_rng(0)
    pool = []
    for _ in range(64):  # 64 distinct textured images, repeated under distinct keys
        base = rng.integers(0, 256, size=(side * 4 // 5 // 8, side // 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((side, side * 4 // 5), Image.BICUBIC)
        noise = rng.integers(-20, 20, size=(side * 4 // 5, side, 3))
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        pool.append(buffer.getvalue())
    for shard in range((images + per_shard - 1) // per_shard):
        with ImageShardWriter(directory, f"{shard:05d}") as writer:
            for i in range(shard * per_shard, min(images, (shard + 1) * per_shard)):
                label = i % 1000
                writer.write(
                    f"img{i:08d}",
                    pool[i % len(pool)],
                    {"label": label},
                    extra={"cls": str(label), "txt": f"photo {label}"},
                )


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(model, device, precision, channels_last):
    from janus_build.train.runtime import autocast

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    criterion = torch.nn.CrossEntropyLoss()

    def step(images, labels):
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    return step


def timed(iterator_factory, steps: int, warmup: int, batch: int, device, body) -> float:
    """images/s of ``body(item)`` over ``steps`` items after ``warmup`` items."""
    iterator = iterator_factory()
    for _ in range(warmup):
        body(next(iterator))
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        body(next(iterator))
    sync(device)
    return rate(steps * batch, time.perf_counter() - start)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--source-side", type=int, default=400, help="width of the generated JPEGs")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: model,loader,bytes,device,train_cpu,train_gpu"
    )
    parser.add_argument("--json", default=None, help="also write the figures here")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    from janus_build.train.data import Normalize, ShardStream, make_loader, resolve_shards, train_transform
    from janus_build.train.gpu_data import DeviceAugment
    from janus_build.train.models import ModelSpec, build_model, normalization
    from janus_build.train.runtime import resolve_device, resolve_precision

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    skip = set(filter(None, args.skip.split(",")))
    torch.manual_seed(0)
    random.seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    spec = ModelSpec(arch=args.arch, loss="ce", image_size=args.image_size)
    mean, std = normalization(spec)
    batch, size = args.batch_size, args.image_size
    results: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_shards(
            Path(tmp), args.images, args.source_side, per_shard=max(64, args.images // max(1, 2 * args.workers))
        )
        shard_set = resolve_shards([tmp])
        print(
            f"wrote {shard_set.samples} JPEGs in {len(shard_set.shards)} shards "
            f"({sum(os.path.getsize(s.path) for s in shard_set.shards) / shard_set.samples / 1024:.0f} kB each) "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        def loader(decode: bool):
            stream = ShardStream(
                shard_set.shards,
                train_transform("simclr", size),
                head_ids=range(1000),
                shuffle_buffer=256,
                decode=decode,
            )
            return lambda: iter(
                make_loader(stream, batch, args.workers, seed=0, epoch=0, pin_memory=device.type == "cuda")
            )

        model = build_model(spec).to(device).to(memory_format=torch.channels_last)
        if args.compile:
            model = torch.compile(model)
        model.train()
        step = make_step(model, device, precision, True)
        normalize = Normalize(mean, std, device)
        augment = DeviceAugment("simclr", size, mean, std, device)

        if "model" not in skip:
            images = torch.randn(batch, 3, size, size, device=device)
            labels = torch.randint(0, 1000, (batch,), device=device)
            results["model only (tensors on the device)"] = timed(
                lambda: iter(lambda: (images, labels), None),
                args.steps,
                args.warmup,
                batch,
                device,
                lambda item: step(*item),
            )
        if "loader" not in skip:
            results[f"loader alone, cpu decode + SimCLR ({args.workers} workers)"] = timed(
                loader(True), args.steps * 3, args.warmup, batch, torch.device("cpu"), lambda item: None
            )
        if "bytes" not in skip:
            results[f"loader alone, JPEG bytes ({args.workers} workers)"] = timed(
                loader(False), args.steps * 3, args.warmup, batch, torch.device("cpu"), lambda item: None
            )
        if "device" not in skip:
            batch_bytes = next(loader(False)())[0]
            results[f"device decode + SimCLR alone ({device.type})"] = timed(
                lambda: iter(lambda: batch_bytes, None), args.steps, args.warmup, batch, device, augment
            )
        if "train_cpu" not in skip:
            results["train from shards, decode + SimCLR in CPU workers"] = timed(
                loader(True),
                args.steps,
                args.warmup,
                batch,
                device,
                lambda item: step(
                    normalize(item[0].to(device, non_blocking=True)), item[1].to(device, non_blocking=True)
                ),
            )
        if "train_gpu" not in skip:
            results[f"train from shards, decode + SimCLR on the device ({device.type})"] = timed(
                loader(False),
                args.steps,
                args.warmup,
                batch,
                device,
                lambda item: step(augment(item[0]), item[1].to(device, non_blocking=True)),
            )

    _report(args, results, device, precision)


def _report(args: argparse.Namespace, results: dict[str, float], device: torch.device, precision: str) -> None:
    """Print the table (and write the JSON) of the figures."""
    batch, size = args.batch_size, args.image_size
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    ceiling = results.get("model only (tensors on the device)")
    print(
        f"\n{args.arch} at {size} px, batch {batch}, {precision}, {device.type} ({name}), {os.cpu_count()} CPU cores, "
        f"{args.workers} loader workers, torch {torch.__version__}\n"
    )
    print("| measurement | images/s | vs. model only |\n| --- | ---: | ---: |")
    for key, value in results.items():
        ratio = f"{value / ceiling:.2f}" if ceiling else "-"
        print(f"| {key} | {value:,.1f} | {ratio} |")
    if args.json:
        figures = {"device": name, "precision": precision, "batch": batch, "arch": args.arch, "image_size": size}
        Path(args.json).write_text(json.dumps({**figures, "workers": args.workers, "results": results}, indent=2))


if __name__ == "__main__":
    main()
