"""Robustness evaluation: top-1 on ImageNet-val and the four shifts (V2, Sketch, R, A), restricted
to the label set, with the paper's average robustness and effective robustness ratio.

Folder layouts (see docs/eval.md):

* ``imagenet_val``, ``imagenet_sketch``: one folder per class named by WordNet id (``n01440764``);
* ``imagenet_v2``: one folder per class named by its ImageNet-1k index (``0`` .. ``999``), mapped
  by integer value, never by string sort;
* ``imagenet_r``, ``imagenet_a``: the datasets' 200 wnid folders.

Predictions are restricted by masking logits to the classes that are both in the label set and
in the shift (for IN100: 100 classes for val/V2/Sketch, 36 for R, 37 for A).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.errors import ConfigError, InputError, MissingResourceError
from janus_build.labels import load_label_set
from janus_build.progress import NULL_PROGRESS, Progress
from janus_build.resources import package_data

log = logging.getLogger(__name__)

SHIFTS = schemas.EVAL_SHIFTS
ROBUSTNESS_SHIFTS = schemas.ROBUSTNESS_SHIFTS
SHIFT_TITLES = {
    "imagenet_val": "ImageNet-val",
    "imagenet_v2": "ImageNet-V2",
    "imagenet_sketch": "ImageNet-Sketch",
    "imagenet_r": "ImageNet-R",
    "imagenet_a": "ImageNet-A",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
METRICS_FORMAT = "janus-eval-metrics/1"


@lru_cache(maxsize=1)
def shift_facts() -> dict[str, list[int]]:
    """The shipped class lists (ImageNet-1k indices): ``imagenet_r_200``, ``imagenet_a_200``, ``in100_r``, ``in100_a``."""
    data = json.loads(package_data("imagenet_shifts.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def shift_classes(shift: str) -> tuple[int, ...] | None:
    """ImageNet-1k indices a shift covers (None: all 1000)."""
    facts = shift_facts()
    return {"imagenet_r": tuple(facts["imagenet_r_200"]), "imagenet_a": tuple(facts["imagenet_a_200"])}.get(shift)


def evaluated_classes(label_ids: Sequence[int], shift: str) -> tuple[int, ...]:
    """The classes a shift is scored on: the label set, intersected with the shift's classes."""
    covered = shift_classes(shift)
    ids = sorted(set(label_ids))
    return tuple(ids if covered is None else (c for c in ids if c in set(covered)))


# --- folders -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalFolder:
    """The images of one shift that are scored: ``files`` of ``(path, ImageNet-1k index)``."""

    shift: str
    root: str
    classes: tuple[int, ...]  # the classes predictions are restricted to
    files: tuple[tuple[str, int], ...]
    present: tuple[int, ...] = ()  # the evaluated classes that have a folder


def _flag(shift: str) -> str:
    return "--" + shift.replace("_", "-")


def list_folder(shift: str, root: str | os.PathLike[str], label_ids: Sequence[int]) -> EvalFolder:
    """Find the images of the evaluated classes of a shift folder.

    Raises:
        InputError: the folder is missing, holds no class folders, or a class folder that does
            not belong to the shift (e.g. a non-integer name in ImageNet-V2, a wnid that is not
            one of ImageNet-R's 200 classes).
    """
    if shift not in SHIFTS:
        raise ConfigError(f"unknown shift {shift!r}; expected one of {', '.join(SHIFTS)}")
    flag, path = _flag(shift), Path(root)
    if not path.is_dir():
        raise InputError(f"{flag} {path}: no such directory")
    if (
        shift == "imagenet_val"
        and (path / "val").is_dir()
        and not any(p.name.startswith("n") for p in path.iterdir() if p.is_dir())
    ):
        path = path / "val"
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{flag} {path}: holds no class folders (see docs/eval.md for the layout)")
    in1k = load_label_set("in1k")
    by_wnid = {w: c for c, w in in1k.wnids.items()}
    covered = set(shift_classes(shift) or range(1000))
    mapping: dict[int, Path] = {}
    for folder in folders:
        if shift == "imagenet_v2":
            if not folder.name.isdigit() or not 0 <= int(folder.name) <= 999:
                raise InputError(
                    f"{flag} {path}: unexpected class folder {folder.name!r} (ImageNet-V2 folders are ImageNet indices 0..999)"
                )
            class_id = int(folder.name)  # by integer value: "10" is class 10, not the 3rd folder
        else:
            if folder.name not in by_wnid:
                raise InputError(
                    f"{flag} {path}: unexpected class folder {folder.name!r} (expected ImageNet wnid folders such as n01440764)"
                )
            class_id = by_wnid[folder.name]
            if class_id not in covered:
                raise InputError(
                    f"{flag} {path}: class folder {folder.name!r} is not one of the 200 {SHIFT_TITLES[shift]} classes"
                )
        mapping[class_id] = folder
    classes = evaluated_classes(label_ids, shift)
    files = []
    for class_id in classes:
        folder = mapping.get(class_id)
        if folder is None:
            continue
        files.extend((os.fspath(f), class_id) for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{flag} {path}: no images of the {len(classes)} evaluated classes of the label set")
    present = tuple(c for c in classes if c in mapping)
    if len(present) < len(classes):
        log.warning(
            "%s %s: %d of %d evaluated classes have no folder", flag, path, len(classes) - len(present), len(classes)
        )
    return EvalFolder(shift=shift, root=os.fspath(path), classes=classes, files=tuple(files), present=present)


# --- scoring -------------------------------------------------------------------------------
def masked_predictions(logits: Any, head_ids: Sequence[int], allowed: Sequence[int]) -> Any:
    """Predicted class ids (ImageNet-1k indices) when only ``allowed`` classes may be predicted.

    ``logits[:, j]`` scores class ``head_ids[j]``; columns of other classes are ignored.
    """
    import torch

    position = {int(c): j for j, c in enumerate(head_ids)}
    missing = [c for c in allowed if c not in position]
    if missing:
        raise ConfigError(f"the model's head has no output for class(es) {missing[:5]} of the label set")
    columns = torch.tensor([position[int(c)] for c in allowed], device=logits.device)
    allowed_ids = torch.tensor([int(c) for c in allowed], device=logits.device)
    return allowed_ids[logits.index_select(1, columns).argmax(dim=1)]


def summarize(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-shift results -> the metrics dict (average robustness, effective robustness ratio).

    Average robustness is the mean top-1 over the robustness shifts evaluated (all four of V2,
    Sketch, R, A for the paper's figure; ``average_robustness_complete`` says whether they were);
    the effective robustness ratio is average robustness / ImageNet-val top-1.
    """
    shifts = {k: dict(v) for k, v in results.items()}
    used = [s for s in ROBUSTNESS_SHIFTS if s in shifts]
    average = sum(shifts[s]["top1"] for s in used) / len(used) if used else None
    val = shifts.get("imagenet_val", {}).get("top1")
    ratio = average / val if average is not None and val else None
    return {
        "format": METRICS_FORMAT,
        "shifts": shifts,
        "val_top1": val,
        "average_robustness": average,
        "average_robustness_shifts": used,
        "average_robustness_complete": len(used) == len(ROBUSTNESS_SHIFTS),
        "effective_robustness_ratio": ratio,
    }


class _Images:
    def __init__(self, files: Sequence[tuple[str, int]], transform: Any) -> None:
        self.files, self.transform = list(files), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, int, str]:
        """``(image, class id, error)``: an unreadable file comes back as a blank image and its error
        message, raised by :func:`score_folder` in the main process (an exception raised in a loader
        worker reaches the user wrapped in the worker's traceback)."""
        from PIL import Image

        path, class_id = self.files[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except OSError as exc:
            return self.transform(Image.new("RGB", (64, 64))), class_id, f"{path}: unreadable image ({exc})"
        return self.transform(image), class_id, ""


def score_folder(
    forward: Any,
    folder: EvalFolder,
    head_ids: Sequence[int],
    transform: Any,
    *,
    device: Any,
    batch_size: int = 256,
    workers: int = 4,
    progress: Progress = NULL_PROGRESS,
    task_prefix: str = "",
) -> dict[str, Any]:
    """Top-1 of ``forward`` (images -> logits over ``head_ids``) on one shift folder."""
    import torch

    loader = torch.utils.data.DataLoader(
        _Images(folder.files, transform), batch_size=batch_size, num_workers=workers, shuffle=False
    )
    task = task_prefix + SHIFT_TITLES[folder.shift]
    progress.start(task, total=len(folder.files), unit="images")
    correct = 0
    with torch.inference_mode():
        for images, targets, errors in loader:
            if any(errors):
                raise InputError(next(e for e in errors if e))
            logits = forward(images.to(device, non_blocking=True))
            predicted = masked_predictions(logits.float(), head_ids, folder.classes)
            correct += int((predicted.cpu() == targets).sum())
            progress.advance(task, len(targets))
    progress.finish(task)
    total = len(folder.files)
    return {
        "top1": correct / total,
        "correct": correct,
        "images": total,
        "classes": len(folder.classes),
        "classes_present": len(folder.present),
        "path": folder.root,
    }


class _PrefixedProgress(Progress):
    def __init__(self, inner: Progress, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        self.inner.start(self.prefix + task, total, unit)

    def advance(self, task: str, amount: int = 1) -> None:
        self.inner.advance(self.prefix + task, amount)

    def finish(self, task: str) -> None:
        self.inner.finish(self.prefix + task)


def prefixed(progress: Progress, prefix: str) -> Progress:
    """``progress`` with every task name prefixed (``eval 32: ImageNet-R``)."""
    return _PrefixedProgress(progress, prefix) if prefix else progress


def make_forward(model: Any, spec: Any, device: Any, precision: str) -> Any:
    """images -> logits over ``spec.head_ids`` (a CE head, or zero-shot text embeddings for VL)."""
    import torch

    from janus_build.train.data import Normalize
    from janus_build.train.models import normalization, zero_shot_weights
    from janus_build.train.runtime import autocast

    model.eval()
    normalize = Normalize(*normalization(spec), device=device)
    if spec.loss == "vl":
        names = load_label_set("in1k").names
        weights = zero_shot_weights(model, spec, [names.get(c, str(c)) for c in spec.head_ids], device)

        def forward(images: Any) -> Any:
            with autocast(device, precision):
                features = model.encode_image(normalize(images))
            return 100.0 * torch.nn.functional.normalize(features.float(), dim=-1) @ weights.T

        return forward

    def forward_ce(images: Any) -> Any:
        images = normalize(images).contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            return model(images)

    return forward_ce


def evaluate_model(
    model: Any,
    spec: Any,
    folders: Mapping[str, str | os.PathLike[str] | EvalFolder | None],
    label_ids: Sequence[int],
    *,
    device: Any,
    precision: str = "fp32",
    transform: Any = None,
    batch_size: int = 256,
    workers: int = 4,
    progress: Progress = NULL_PROGRESS,
) -> dict[str, Any]:
    """Evaluate a built model on the given shift folders; returns :func:`summarize`'s dict.

    Progress tasks are named by the shift (``ImageNet-R``); :func:`prefixed` names them per run.
    """
    from janus_build.train.data import eval_transform

    listed = {
        shift: root if isinstance(root, EvalFolder) else list_folder(shift, root, label_ids)
        for shift, root in folders.items()
        if root
    }
    if not listed:
        raise ConfigError(
            "no evaluation folder given (--imagenet-val, --imagenet-v2, --imagenet-sketch, --imagenet-r, --imagenet-a)"
        )
    if transform is None:
        transform = eval_transform(spec.image_size)
    forward = make_forward(model, spec, device, precision)
    results = {
        shift: score_folder(
            forward,
            folder,
            spec.head_ids,
            transform,
            device=device,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
        )
        for shift, folder in listed.items()
    }
    return summarize(results)


# --- janus eval ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    """Options of ``janus eval`` (one field per CLI option)."""

    checkpoint: str | None = None
    timm_model: str | None = None
    timm_weights: str | None = None
    arch: str | None = None
    imagenet_val: str | None = None
    imagenet_v2: str | None = None
    imagenet_sketch: str | None = None
    imagenet_r: str | None = None
    imagenet_a: str | None = None
    labels: str | None = None  # default: the label set the checkpoint was trained on, else in100
    batch_size: int = 256
    workers: int = 4
    device: str = "auto"
    precision: str = "auto"
    out: str | None = None
    baseline: str | None = None  # open_clip:NAME (zero-shot) or timm:NAME, scored on the label set
    pretrained: str = "openai"  # the baseline's weights: an open_clip tag, a timm file, hub or none
    prompts: str = "openai"  # open_clip baselines: openai (80 templates), single or a FILE

    def shift_folders(self) -> dict[str, str]:
        return {s: getattr(self, s) for s in SHIFTS if getattr(self, s)}


def _checkpoint_file(file: Path) -> Path:
    """A checkpoint file, or a janus train run directory's best checkpoint (else its last)."""
    if file.is_dir():
        run = file
        file = next(
            (c for c in (run / "checkpoints" / "best.pt", run / "checkpoints" / "last.pt") if c.is_file()),
            run / "checkpoints" / "last.pt",
        )
    if not file.is_file():
        raise InputError(f"CHECKPOINT {file}: no such file")
    return file


def _bare_state_dict(file: Path, data: dict[str, Any], arch: str | None, image_size: int | None) -> tuple[Any, Any]:
    """``(state dict, spec)`` of a bare state dict: --arch names the network, the head its classes."""
    from janus_build.train.models import ModelSpec

    if not arch:
        raise InputError(
            f"CHECKPOINT {file}: a bare state dict, not a janus train checkpoint; say which network it is with --arch"
        )
    state = data.get("state_dict", data)
    heads = ("fc.weight", "head.weight", "head.fc.weight", "classifier.weight")
    head = next((v for k, v in state.items() if k.endswith(heads)), None)
    classes = int(head.shape[0]) if head is not None else 1000
    return state, ModelSpec(arch=arch, loss="ce", head_ids=tuple(range(classes)), image_size=image_size or 224)


def load_checkpoint(
    path: str | os.PathLike[str], arch: str | None = None, image_size: int | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild the model stored in a ``janus train`` checkpoint (or a bare state dict with ``arch``).

    Returns ``(model, spec, info)``.

    Raises:
        InputError: unreadable file, or weights of another architecture than ``arch``.
    """
    import torch

    from janus_build.train.models import ModelSpec, build_model, load_weights

    file = _checkpoint_file(Path(path))
    try:
        data = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise InputError(f"CHECKPOINT {file}: not a readable PyTorch checkpoint ({exc})") from None
    if isinstance(data, dict) and "model_spec" in data:
        spec = ModelSpec.from_dict(data["model_spec"])
        if arch and arch != spec.arch:
            raise InputError(f"CHECKPOINT {file}: was trained with --arch {spec.arch}, not --arch {arch}")
        state = data["model"]
        info = {"checkpoint": os.fspath(file), "arch": spec.arch, "loss": spec.loss}
        info.update(epoch=data.get("epoch"), step=data.get("step"), labels=data.get("labels"))
    elif isinstance(data, dict):
        state, spec = _bare_state_dict(file, data, arch, image_size)
        info = {"checkpoint": os.fspath(file), "arch": spec.arch, "loss": "ce"}
    else:
        raise InputError(f"CHECKPOINT {file}: holds a {type(data).__name__}, not a model checkpoint")
    if image_size:
        spec = dataclasses.replace(spec, image_size=image_size)
    model = build_model(spec)
    load_weights(model, state, spec, f"CHECKPOINT {file}")
    return model, spec, info


def _local_timm_weights(name: str) -> str | None:
    """A locally cached pretrained file for a timm model (Hugging Face or torch hub cache), or None."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:
        cfg = None
    if cfg is None:
        return None
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                return found
    url = getattr(cfg, "url", None)
    if url:
        import torch

        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if candidate.is_file():
            return os.fspath(candidate)
    return None


def load_timm_model(name: str, weights: str | None = None) -> tuple[Any, Any, dict[str, Any], Any]:
    """A timm ImageNet-1k model with local pretrained weights (never downloaded).

    Returns ``(model, spec, info, eval transform)``.

    Raises:
        MissingResourceError: no local weights for the model and no ``weights`` file given.
    """
    import timm
    from timm.data import create_transform, resolve_data_config

    from janus_build.train.models import ModelSpec

    if name not in timm.list_models(pretrained=False) and name not in timm.list_models(pretrained=True):
        raise ConfigError(f"--timm-model: timm has no model {name!r}")
    file = weights or _local_timm_weights(name)
    if file is None:
        raise MissingResourceError(
            f"--timm-model {name}: no pretrained weights in the local caches; download them once "
            f"(python -c \"import timm; timm.create_model('{name}', pretrained=True)\") or pass --timm-weights FILE"
        )
    if not Path(file).is_file():
        raise InputError(f"--timm-weights {file}: no such file")
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": os.fspath(file)})
    except RuntimeError as exc:
        raise InputError(
            f"--timm-weights {file}: does not fit timm model {name} ({str(exc).splitlines()[0]})"
        ) from None
    num_classes = model.num_classes
    if num_classes != 1000:
        raise ConfigError(f"--timm-model {name}: has {num_classes} outputs; ImageNet-1k (1000) models are expected")
    data_config = resolve_data_config({}, model=model)
    spec = ModelSpec(
        arch=f"timm:{name}", loss="ce", head_ids=tuple(range(1000)), image_size=int(data_config["input_size"][-1])
    )
    return (
        model,
        spec,
        {"timm_model": name, "weights": os.fspath(file)},
        create_transform(**data_config, is_training=False),
    )


def evaluate(config: EvalConfig, progress: Progress = NULL_PROGRESS, labeller: Any = None) -> dict[str, Any]:
    """Run ``janus eval``: load the model, score every given folder, write ``config.out`` (JSON).

    ``labeller`` replaces a ``--baseline`` model (tests with known answers).

    Raises:
        ConfigError: neither or both of a checkpoint and ``timm_model``; no folder given.
        InputError: a folder or checkpoint problem (see :func:`list_folder`, :func:`load_checkpoint`).
    """
    import torch

    from janus_build.core.fsio import atomic_write_json
    from janus_build.train.runtime import resolve_device, resolve_precision

    if sum(bool(x) for x in (config.checkpoint, config.timm_model, config.baseline)) != 1:
        raise ConfigError(
            "janus eval: give either CHECKPOINT or --timm-model NAME or --baseline open_clip:NAME|timm:NAME (exactly one)"
        )
    if config.baseline:
        from janus_build.train.baselines import check_baseline

        check_baseline(config.baseline)
    folders = config.shift_folders()
    if not folders:
        raise ConfigError(
            "janus eval: give at least one of --imagenet-val, --imagenet-v2, --imagenet-sketch, --imagenet-r, --imagenet-a"
        )
    if config.labels is not None:
        label_set = load_label_set(config.labels)
        listed = {
            shift: list_folder(shift, root, label_set.ids) for shift, root in folders.items()
        }  # fail before loading a model
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    transform = None
    if config.baseline:
        from janus_build.train.baselines import baseline_model

        label_set = load_label_set(config.labels or "in100")
        listed = {shift: list_folder(shift, root, label_set.ids) for shift, root in folders.items()}
        model, spec, info, transform = baseline_model(
            config.baseline, config.pretrained, config.prompts, label_set, device, labeller
        )
    elif config.timm_model:
        model, spec, info, transform = load_timm_model(config.timm_model, config.timm_weights)
    else:
        model, spec, info = load_checkpoint(config.checkpoint, config.arch)  # type: ignore[arg-type]
    if config.labels is None and not config.baseline:  # the checkpoint's own label set
        label_set = load_label_set(info.get("labels") or "in100")
        listed = {shift: list_folder(shift, root, label_set.ids) for shift, root in folders.items()}
    model = model.to(device)
    if device.type == "cuda" and spec.loss == "ce":
        model = model.to(memory_format=torch.channels_last)
    metrics = evaluate_model(
        model,
        spec,
        listed,
        label_set.ids,
        device=device,
        precision=precision,
        transform=transform,
        batch_size=config.batch_size,
        workers=config.workers,
        progress=progress,
    )
    metrics = {"model": info, "labels": label_set.name, **metrics}
    if config.out:
        atomic_write_json(config.out, metrics)
    return metrics
