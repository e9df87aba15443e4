"""Benchmark ``janus caption``: images/s by batch size and precision, the data loader alone, GPU use.

Three measurements on the same synthetic image stage (JPEGs of ``--image-side`` pixels, like
Flickr's medium size), so the limit is visible:

* ``loader``: DataLoader workers decoding + preprocessing only (no model);
* ``model``: ``generate`` on pixel tensors already on the device (no loader);
* ``end to end``: :func:`janus_build.caption.run_caption` (loader + model + spell check + write),
  with the GPU's utilisation sampled while it runs.

End to end close to ``model`` and well under ``loader`` means the GPU is the limit.

CPU (harness check, tiny random BLIP)::

    python benchmarks/bench_caption.py

GPU (full-size BLIP-base architecture, random weights, no download; every caption runs to the
full 40 tokens because min length = max length)::

    python benchmarks/bench_caption.py --device cuda --full-size

Depends only on torch, transformers, pillow, numpy and janus_build.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def build_stage(directory: Path, images: int, side: int, per_shard: int = 256) -> None:
    from janus_build.core.shards import ImageShardWriter
    from janus_build.demo.images import class_image

    for start in range(0, images, per_shard):
        with ImageShardWriter(directory, f"{start // per_shard:05d}") as writer:
            for i in range(start, min(images, start + per_shard)):
                writer.write(
                    f"bench-{i:06d}", class_image(i % 100, i, side), {"title": f"sample {i % 100} IMG_{i:04d}"}
                )


def build_captioner(full_size: bool, device: str, precision: str, config, workdir: Path):
    """A randomly initialised BLIP (tiny, or the BLIP-base architecture) with a processor."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from janus_build.caption.model import Captioner, resolve_dtype
    from janus_build.demo.tiny_blip import tiny_blip_config

    torch.manual_seed(0)
    if full_size:
        blip_config = BlipConfig()  # the defaults are BLIP-base: ViT-B/16 at 384 px, BERT-base decoder
        vocab_size, side = blip_config.text_config.vocab_size, 384
    else:
        vocab_size, side = 512, 32
        blip_config = tiny_blip_config(vocab_size, side, bos=vocab_size - 2, sep=102, eos=2)
    # A BERT-layout vocabulary of real English words, so random captions cost the spell checker
    # what real ones do (mostly known words).
    prompt_words = ["a", "picture", "of"]  # the prompt must tokenize to whole words
    import importlib.resources

    # symspellpy's frequency dictionary (janus_build's own dependency), most frequent first
    dictionary = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    common = (line.split()[0] for line in dictionary.read_text(encoding="utf-8").splitlines())
    ranked = (w for w in common if w.isalpha() and w not in prompt_words)
    words = iter(prompt_words + [w for w, _ in zip(ranked, range(vocab_size))])
    special = {
        0: "[PAD]",
        100: "[UNK]",
        101: "[CLS]",
        102: "[SEP]",
        103: "[MASK]",
        vocab_size - 2: "[DEC]",
        vocab_size - 1: "[ENC]",
    }
    vocab = [special.get(i) or next(words) for i in range(vocab_size)]
    (workdir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(workdir / "vocab.txt"), bos_token="[DEC]")
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": side, "width": side}), tokenizer=tokenizer
    )
    model = BlipForConditionalGeneration(blip_config)
    return Captioner(model, processor, config, device, resolve_dtype(precision, device))


class GpuSampler:
    """Samples GPU utilisation (%) every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.samples, self._stop = interval, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        import torch

        try:
            return float(torch.cuda.utilization())
        except Exception:
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                return float(out.stdout.strip().splitlines()[0])
            except Exception:
                return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--full-size", action="store_true", help="BLIP-base architecture (random weights) instead of a tiny model"
    )
    parser.add_argument(
        "--images", type=int, default=None, help="images in the synthetic stage (default 96 cpu / 2048 cuda)"
    )
    parser.add_argument("--image-side", type=int, default=500, help="side of the synthetic JPEGs")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 8,32 cpu / 32,64,128,256 cuda)")
    parser.add_argument(
        "--precisions", default=None, help="comma-separated (default fp32,bf16 cpu / bf16,fp16,fp32 cuda)"
    )
    parser.add_argument("--num-workers", type=int, default=None, help="loader workers (default 2 cpu / 12 cuda)")
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument(
        "--model-batches", type=int, default=3, help="timed generate() calls per setting (after one warm-up)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def main() -> None:
    args = _arguments()

    import torch

    from janus_build.caption import CaptionConfig
    from janus_build.caption.inputs import MetadataColumns, find_shards, load_samples
    from janus_build.caption.run import make_loader

    cuda = args.device == "cuda"
    images = args.images or (2048 if cuda else 96)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("32,64,128,256" if cuda else "8,32")).split(",")]
    precisions = (args.precisions or ("bf16,fp16,fp32" if cuda else "fp32,bf16")).split(",")
    workers = args.num_workers if args.num_workers is not None else (12 if cuda else 2)
    workdir = Path(tempfile.mkdtemp(prefix="bench-caption-"))
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
        },
        "settings": {
            "device": args.device,
            "full_size": args.full_size,
            "images": images,
            "image_side": args.image_side,
            "max_length": args.max_length,
            "min_length": args.max_length,
            "num_workers": workers,
        },
        "loader": [],
        "model": [],
        "end_to_end": [],
    }
    try:
        stage = workdir / "stage"
        t0 = time.perf_counter()
        build_stage(stage, images, args.image_side)
        print(f"synthetic stage: {images} JPEGs of {args.image_side}px in {time.perf_counter() - t0:.1f}s")

        def make_config(batch: int, precision: str, out: str) -> CaptionConfig:
            return CaptionConfig(
                stage_dir=stage,
                out=workdir / out,
                device=args.device,
                precision=precision,
                batch_size=batch,
                num_workers=workers,
                max_length=args.max_length,
                min_length=args.max_length,
            )

        base = make_config(batch_sizes[0], precisions[0], "unused")
        captioner = build_captioner(args.full_size, args.device, precisions[0], base, workdir)
        print(
            f"model: {'BLIP-base architecture' if args.full_size else 'tiny BLIP'}, "
            f"{sum(p.numel() for p in captioner.model.parameters()) / 1e6:.1f} M parameters, random weights"
        )

        # 1. The loader alone.
        columns = MetadataColumns("title", None, ())
        samples = [s for shard in find_shards(stage) for s in load_samples(shard, columns)]
        for batch in batch_sizes:
            batches = [list(range(i, min(len(samples), i + batch))) for i in range(0, len(samples), batch)]
            loader = make_loader(
                samples, batches, captioner.image_processor, make_config(batch, precisions[0], "x"), pin_memory=cuda
            )
            t0 = time.perf_counter()
            count = sum(len(b["indices"]) for b in loader)
            rate = count / (time.perf_counter() - t0)
            results["loader"].append({"batch_size": batch, "num_workers": workers, "images_per_s": round(rate, 1)})
            print(f"loader  batch {batch:4d} workers {workers:2d}: {rate:8.1f} images/s")

        # The spell checker's dictionaries load once per process (cached): outside the timings.
        from janus_build.caption.spelling import SpellFixer

        t0 = time.perf_counter()
        SpellFixer()
        results["spell_dictionary_load_s"] = round(time.perf_counter() - t0, 2)
        print(f"spell checker dictionaries: loaded in {results['spell_dictionary_load_s']} s")

        # 2. The model alone, 3. end to end.
        for precision in precisions:
            captioner = build_captioner(
                args.full_size, args.device, precision, make_config(batch_sizes[0], precision, "x"), workdir
            )
            for batch in batch_sizes:
                _model_and_end_to_end(
                    args,
                    captioner,
                    precision,
                    batch,
                    make_config(batch, precision, f"out-{precision}-{batch}"),
                    results,
                )
            if cuda:
                del captioner
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _model_and_end_to_end(
    args: argparse.Namespace, captioner, precision: str, batch: int, config, results: dict
) -> None:
    """2. ``generate`` alone on pixel tensors in memory; 3. ``run_caption`` end to end."""
    import torch

    from janus_build.caption import run_caption

    cuda = args.device == "cuda"
    side = captioner.image_processor.size["height"]
    pixels = torch.randn(batch, 3, side, side)
    captioner.generate(pixels, seed=0)  # warm-up
    sync(args.device)
    with GpuSampler() if cuda else _Null() as sampler:
        t0 = time.perf_counter()
        for b in range(args.model_batches):
            texts = captioner.generate(pixels, seed=b)
        sync(args.device)
        seconds = time.perf_counter() - t0
    rate = batch * args.model_batches / seconds
    row = {
        "precision": precision,
        "batch_size": batch,
        "images_per_s": round(rate, 1),
        "gpu_util_pct": getattr(sampler, "mean", None),
        "caption_words": len(texts[0].split()),
    }
    results["model"].append(row)
    print(f"model   {precision:5s} batch {batch:4d}: {rate:8.1f} images/s  gpu {row['gpu_util_pct']}%")

    with GpuSampler() if cuda else _Null() as sampler:
        t0 = time.perf_counter()
        summary = run_caption(config, captioner=captioner)
        seconds = time.perf_counter() - t0
    rate = summary["successes"] / seconds
    row = {
        "precision": precision,
        "batch_size": batch,
        "images_per_s": round(rate, 1),
        "gpu_util_pct": getattr(sampler, "mean", None),
        "captioned": summary["successes"],
    }
    results["end_to_end"].append(row)
    print(f"e2e     {precision:5s} batch {batch:4d}: {rate:8.1f} images/s  gpu {row['gpu_util_pct']}%")
    shutil.rmtree(config.out, ignore_errors=True)


class _Null:
    mean = None

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
