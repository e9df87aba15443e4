"""Training data: JANuS webdataset shards streamed as augmented batches.

The pipeline per loader worker is webdataset's (``SimpleShardList -> tarfile_to_samples ->
shuffle -> decode/augment``); this module decides *which* shards or samples each consumer (one
loader worker of one process) reads, so that

* every consumer of every process gets a disjoint share of the data (node and worker splitting);
* the share and the shuffle depend only on ``(seed, epoch)``: a resumed run sees exactly the
  batches the uninterrupted run would have seen;
* each consumer's stream is endless (its share is re-read, reshuffled, when it runs out —
  "epoch resampling"), and an epoch is a fixed number of steps, so processes under
  DistributedDataParallel never wait on a rank that ran out of data.

With at least as many shards as consumers, shards are divided; with fewer (small datasets, many
GPUs), every consumer reads all shards and keeps every n-th sample.
"""

from __future__ import annotations

import glob
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from janus_build import schemas
from janus_build.core.imaging import IMAGE_EXTENSIONS, open_image
from janus_build.errors import ConfigError, InputError
from janus_build.train.config import AUGMENTATIONS

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Shard:
    """One webdataset tar and the number of image samples it holds."""

    path: str
    count: int


@dataclass(frozen=True)
class ShardSet:
    """The resolved training shards and, when found, the ``janus balance`` manifest beside them."""

    shards: tuple[Shard, ...]
    manifest: dict[str, Any] | None

    @property
    def samples(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def labels(self) -> str | None:
        """The label set named in the manifest's config (``labels``), if any."""
        config = (self.manifest or {}).get("config") or {}
        value = config.get("labels")
        return str(value) if value else None


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    from janus_build.core.stage import read_manifest

    return read_manifest(directory) or read_manifest(directory.parent)


def _count_samples(tar_path: Path) -> int:
    """Image samples in a shard: from the parquet index beside it, else by listing the tar.

    Raises:
        InputError: an unreadable index or tar (named).
    """
    index = tar_path.with_suffix(".parquet")
    if index.is_file():
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(index, columns=None)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{index}: unreadable parquet index ({exc})") from None
        if "image_ext" in table.column_names:
            return int(pc.sum(pc.is_valid(table.column("image_ext"))).as_py() or 0)
        return table.num_rows
    from janus_build.core.shards import image_members

    return len(image_members(tar_path))  # the core's one tar scanner and key rule


def resolve_shards(inputs: Sequence[str | os.PathLike[str]]) -> ShardSet:
    """Turn tar files, globs and directories into the list of training shards.

    A directory holding a ``train/`` folder (a ``janus balance`` output) contributes
    ``train/*.tar``; any other directory contributes its own ``*.tar``.

    Raises:
        InputError: an input matches no tar file, or a shard is unreadable.
    """
    if not inputs:
        raise ConfigError("janus train: give at least one shard, glob or directory (SHARDS...)")
    paths: list[Path] = []
    manifest: dict[str, Any] | None = None
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            directory = path / "train" if (path / "train").is_dir() else path
            found = sorted(directory.glob("*.tar"))
            manifest = manifest or _read_manifest(directory)
            if not found:
                raise InputError(f"{text}: no .tar shards in {directory}")
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(text) if p.endswith(".tar"))
            if not found:
                raise InputError(f"{text}: the pattern matches no .tar file")
        elif path.is_file():
            if path.suffix != ".tar":
                raise InputError(f"{text}: expected a webdataset .tar shard")
            found = [path]
        else:
            raise InputError(f"{text}: no such file or directory")
        if manifest is None and found:
            manifest = _read_manifest(found[0].parent)
        paths.extend(found)
    unique = list(dict.fromkeys(_resolved_shard(p) for p in paths))
    shards = tuple(Shard(os.fspath(p), _count_samples(p)) for p in unique)
    if not any(s.count for s in shards):
        raise InputError(f"{', '.join(map(os.fspath, inputs))}: the shards hold no image samples")
    return ShardSet(shards=shards, manifest=manifest)


def _resolved_shard(path: Path) -> Path:
    """The shard's real path; a looping or dangling symbolic link is an input error naming it."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop before Python 3.13
        raise InputError(f"{path}: a symbolic link loop or a dangling link; fix or remove it") from None


def usable_samples(shards: Sequence[Shard], head_ids: Sequence[int] | None = None) -> int | None:
    """Samples training can use, counted in the shards' parquet indexes: those whose ``label`` is
    one of ``head_ids`` (``--loss ce``) or, without ``head_ids``, whose ``caption`` is not blank
    (``--loss vl``). None when a shard has no index with those columns (bare tar files).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = schemas.LABEL if head_ids is not None else "caption"
    total = 0
    for shard in shards:
        index = Path(shard.path).with_suffix(".parquet")
        if not index.is_file():
            return None
        names = set(pq.read_schema(index).names)
        if column not in names:
            return None
        table = pq.read_table(index, columns=[column] + (["image_ext"] if "image_ext" in names else []))
        values = table.column(column)
        if head_ids is not None:
            keep = pc.is_in(values, value_set=pa.array(sorted(set(head_ids)), pa.int64()).cast(values.type))
        else:
            keep = pc.not_equal(pc.utf8_trim_whitespace(values), "")
        if "image_ext" in names:
            keep = pc.and_(keep, pc.is_valid(table.column("image_ext")))
        total += int(pc.sum(pc.fill_null(keep, False).cast(pa.int64())).as_py() or 0)
    return total


# --- augmentation --------------------------------------------------------------------------
class PILGaussianBlur:
    """Gaussian blur with sigma drawn uniformly from ``sigma`` (as MoCo v2 / SimCLR), done by PIL.

    torchvision's GaussianBlur on PIL images round-trips through a tensor convolution and is
    tens of times slower per image in a loader worker; the random draw uses torch's generator so
    loader seeding keeps runs reproducible.
    """

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, image: Any) -> Any:
        from PIL import ImageFilter

        sigma = float(torch.empty(1).uniform_(self.sigma[0], self.sigma[1]))
        return image.filter(ImageFilter.GaussianBlur(radius=sigma))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


class JpegQuality:
    """Re-encode a PIL image as JPEG at ``quality`` and decode it again (the paper's ``jpeg10``)."""

    def __init__(self, quality: int) -> None:
        self.quality = quality

    def __call__(self, image: Any) -> Any:
        from janus_build.core.imaging import jpeg_roundtrip

        return jpeg_roundtrip(image, self.quality)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(quality={self.quality})"


_WORD = re.compile(r"[a-z0-9]+")


class TextTransform:
    """The caption ablations of the paper: ``scramble`` shuffles a caption's words (a new order per
    sample and epoch); ``strip`` keeps only the words that occur in a class name of the label set
    (the tokens a zero-shot classifier uses at inference), in caption order."""

    def __init__(self, kind: str, class_names: Sequence[str] = (), seed: int = 0) -> None:
        self.kind = kind
        self.vocabulary = {w for name in class_names for w in _WORD.findall(name.lower())}
        self.seed = seed

    def __call__(self, text: str, salt: str = "") -> str:
        words = text.split()
        if self.kind == "scramble":
            random.Random(f"{self.seed}/{salt}/{text}").shuffle(words)
        elif self.kind == "strip":
            words = [w for w in words if any(t in self.vocabulary for t in _WORD.findall(w.lower()))]
        return " ".join(words)


@dataclass(frozen=True)
class TargetOptions:
    """How a sample's target is made beyond the default: ``multi_label`` (ce: a multi-hot vector of
    the sample's ``labels`` member) and ``text_transform`` (vl: applied to the caption first)."""

    multi_label: bool = False
    text_transform: TextTransform | None = None


def train_transform(augment: str, image_size: int, jpeg_quality: int | None = None) -> Callable[[Any], Any]:
    """The training augmentation: PIL image -> uint8 CHW tensor (normalised later, on the device).

    ``simclr`` (the paper's): RandomResizedCrop scale (0.08, 1), horizontal flip, colour jitter
    (0.4, 0.4, 0.4, 0.1) with p 0.8, greyscale p 0.2, Gaussian blur p 0.5 with sigma in (0.1, 2).
    ``standard``: RandomResizedCrop and flip (the usual ImageNet recipe).
    Workers ship uint8 tensors (a quarter of float32's bytes) and :class:`Normalize` runs batched
    on the training device. ``jpeg_quality`` re-encodes each image at that quality first.
    """
    from torchvision import transforms as T

    if augment not in AUGMENTATIONS:
        raise ConfigError(f"--augment: expected one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    steps: list[Any] = [JpegQuality(jpeg_quality)] if jpeg_quality else []
    steps += [T.RandomResizedCrop(image_size, scale=(0.08, 1.0)), T.RandomHorizontalFlip()]
    if augment == "simclr":
        steps += [
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([PILGaussianBlur((0.1, 2.0))], p=0.5),
        ]
    steps.append(T.PILToTensor())
    return T.Compose(steps)


def eval_transform(image_size: int) -> Callable[[Any], Any]:
    """Resize the short side to image_size / 0.875, centre-crop image_size (the ImageNet protocol); uint8 CHW."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(int(round(image_size / 0.875))), T.CenterCrop(image_size), T.PILToTensor()])


class Normalize:
    """Batched normalisation on the device: uint8 NCHW -> float (x/255 - mean) / std.

    Float batches (e.g. from a timm eval transform, already normalised) pass through unchanged.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: Any) -> None:
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, -1, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(1, -1, 1, 1)

    def __call__(self, images: Any) -> Any:
        if images.dtype != torch.uint8:
            return images
        return images.float().mul_(self.scale).sub_(self.shift)


# --- the stream ----------------------------------------------------------------------------
def consumer_plan(
    shards: Sequence[Shard], consumer: int, consumers: int, seed: int, epoch: int, rounds: int = 0
) -> tuple[list[str], int, int]:
    """Which shards a consumer reads and which of their samples it keeps: ``(urls, stride, offset)``.

    The shard order is shuffled by ``(seed, epoch, rounds)``; with at least as many shards as
    consumers each consumer takes every ``consumers``-th shard (stride 1), otherwise it reads
    all shards and keeps samples ``offset, offset + stride, ...``.
    """
    order = [s.path for s in shards]
    random.Random(f"{seed}/{epoch}/{rounds}").shuffle(order)
    if len(order) >= consumers:
        return order[consumer::consumers], 1, 0
    return order, consumers, consumer


def _take_every(stride: int, offset: int) -> Callable[[Iterator[dict[str, Any]]], Iterator[dict[str, Any]]]:
    def stage(samples: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for i, sample in enumerate(samples):
            if i % stride == offset:
                yield sample

    return stage


def _warn_and_continue(exc: Exception) -> bool:
    log.warning("skipping an unreadable sample: %s", exc)
    return True


class ShardStream(torch.utils.data.IterableDataset):
    """An endless, per-epoch-deterministic stream of ``(image tensor, target)`` for one process.

    Load it with :func:`make_loader`. ``target`` is the
    head index of the sample's ``cls`` (``--loss ce``) or the tokenised ``txt`` caption
    (``--loss vl``). Samples whose class is not in ``head_ids`` are skipped.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        transform: Callable[[Any], Any],
        *,
        head_ids: Sequence[int] | None = None,
        tokenizer: Callable[[list[str]], Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle_buffer: int = 2000,
        decode: bool = True,
        targets: TargetOptions | None = None,
    ) -> None:
        if head_ids is None and tokenizer is None:
            raise ValueError("ShardStream needs head_ids (ce) or a tokenizer (vl)")
        super().__init__()
        self.shards = list(shards)
        self.transform = transform
        self.lookup = {int(c): i for i, c in enumerate(head_ids)} if head_ids is not None else None
        self.tokenizer = tokenizer
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.decode = decode  # False: yield the JPEG bytes as a uint8 tensor (decoded on the device)
        targets = targets or TargetOptions()
        self.multi_label = targets.multi_label  # target: a multi-hot vector of the sample's `labels`
        self.text_transform = targets.text_transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shard assignment and shuffle the next iteration uses."""
        self.epoch = epoch

    def _convert(self, sample: dict[str, Any]) -> tuple[Any, Any] | None:
        image_ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
        if image_ext is None:
            return None
        target = self._target(sample)
        if target is None:
            return None
        if not self.decode:
            data = sample[image_ext]
            if image_ext not in ("jpg", "jpeg"):  # nvJPEG reads JPEG only: re-encode the rare PNG/WebP
                import io

                buffer = io.BytesIO()
                open_image(data).save(buffer, format="JPEG", quality=95)
                data = buffer.getvalue()
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), target
        return self.transform(open_image(sample[image_ext])), target

    def _target(self, sample: dict[str, Any]) -> Any:
        """The head index (ce), multi-hot vector (ce, multi-label) or caption tokens (vl); None: skip."""
        if self.lookup is None:
            raw = sample.get(schemas.TRAIN_CAPTION_MEMBER)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
            if self.text_transform is not None:
                text = self.text_transform(text, f"{self.epoch}/{sample.get('__key__')}")
            if not text.strip():  # an uncaptioned sample teaches a CLIP model nothing
                return None
            return self.tokenizer([text])[0]  # type: ignore[misc]
        raw = sample.get(schemas.TRAIN_LABEL_MEMBER)
        if raw is None:
            return None
        label = self.lookup.get(int(raw.decode() if isinstance(raw, bytes) else raw))
        if label is None or not self.multi_label:
            return label
        import json

        extra = sample.get(schemas.TRAIN_LABELS_MEMBER)
        classes = json.loads(extra) if extra else []
        target = torch.zeros(len(self.lookup))
        target[label] = 1.0
        for c in classes:
            if int(c) in self.lookup:
                target[self.lookup[int(c)]] = 1.0
        return target

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import webdataset as wds

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        consumers = self.world_size * workers
        consumer = self.rank * workers + worker
        rounds = 0
        while True:  # endless: the training loop takes a fixed number of steps per epoch
            urls, stride, offset = consumer_plan(self.shards, consumer, consumers, self.seed, self.epoch, rounds)
            rng = random.Random(f"{self.seed}/{self.epoch}/{rounds}/{consumer}")
            stages: list[Any] = [wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=_warn_and_continue)]
            if stride > 1:
                stages.append(_take_every(stride, offset))
            if self.shuffle_buffer > 1:
                stages.append(wds.shuffle(self.shuffle_buffer, initial=min(self.shuffle_buffer, 100), rng=rng))
            produced = 0
            for sample in wds.DataPipeline(*stages):
                try:
                    item = self._convert(sample)
                except Exception as exc:  # a corrupt image is skipped, not fatal
                    log.warning("skipping sample %s: %s", sample.get("__key__"), exc)
                    continue
                if item is not None:
                    produced += 1
                    yield item
            if produced == 0:
                raise InputError(
                    f"loader consumer {consumer}: its shards yielded no usable samples (check the labels and images)"
                )
            rounds += 1


def collate_jpegs(batch: list[tuple[Any, Any]]) -> tuple[list[Any], Any]:
    """Batch ``(jpeg bytes tensor, target)`` pairs: a list of byte tensors and stacked targets."""
    from torch.utils.data import default_collate

    return [item[0] for item in batch], default_collate([item[1] for item in batch])


def make_loader(
    stream: ShardStream, batch_size: int, workers: int, *, seed: int, epoch: int, pin_memory: bool = False
) -> Any:
    """A DataLoader over ``stream`` for ``epoch`` (per-worker batches; endless)."""
    stream.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(seed * 1_000_003 + epoch * 1009 + stream.rank)
    return torch.utils.data.DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=workers,
        drop_last=True,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        generator=generator,
        collate_fn=None if stream.decode else collate_jpegs,
    )
