"""Run ``janus label``: every image of a stage scored by one model, one output shard per input shard."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.fsio import atomic_write_json
from janus_build.core.shards import TarShard, find_tar_shards, image_members, resolve_image_stage
from janus_build.core.stage import StageDir, fingerprint_file
from janus_build.errors import InputError
from janus_build.label.config import VOLATILE, LabelConfig
from janus_build.progress import Progress

log = logging.getLogger(__name__)

STATS_FILE = "_stats.json"
TOP_K = 5


@dataclass(frozen=True)
class _Item:
    key: str
    offset: int | None
    size: int | None
    truth: int | None
    status: str
    error: str | None


def _items(shard: TarShard, truth_col: str | None) -> list[_Item]:
    """The samples of one tar: from its index when it has one, else from the tar's members."""
    import pyarrow.parquet as pq

    if shard.index is None:
        if truth_col:
            raise InputError(f"--truth-col {truth_col}: {shard.tar} has no parquet index to read it from")
        return [_Item(k, o, s, None, "success", None) for k, (_e, o, s) in sorted(image_members(shard.tar).items())]
    names = pq.read_schema(shard.index).names
    if truth_col and truth_col not in names:
        raise InputError(f"--truth-col {truth_col}: no such column in {shard.index} (columns: {', '.join(names)})")
    wanted = ["key", "image_offset", "image_size", "status", "error_message"] + ([truth_col] if truth_col else [])
    rows = pq.read_table(shard.index, columns=[c for c in wanted if c in names]).to_pylist()
    return [
        _Item(
            r["key"],
            r.get("image_offset"),
            r.get("image_size"),
            r.get(truth_col) if truth_col else None,
            r.get("status") or "success",
            r.get("error_message"),
        )
        for r in rows
    ]


class _Images:
    """A torch dataset of one shard's images, decoded in loader workers; failures become None."""

    def __init__(self, tar: Path, items: Sequence[_Item], transform: Any) -> None:
        self.tar, self.items, self.transform = tar, list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        from janus_build.core.imaging import open_image
        from janus_build.core.shards import read_image

        item = self.items[index]
        try:
            data = read_image(self.tar.parent, self.tar.name, item.offset, item.size)
            return index, self.transform(open_image(data)), None
        except Exception as exc:  # a bad image is a row, not a crash
            return index, None, f"{type(exc).__name__}: {exc}"


def _collate(batch: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, list[tuple[int, str]]]:
    import torch

    good = [(i, t) for i, t, e in batch if e is None]
    bad = [(i, e) for i, _t, e in batch if e is not None]
    images = torch.stack([t for _i, t in good]) if good else None
    return [i for i, _t in good], images, bad  # type: ignore[return-value]


def _score(shard: TarShard, items: list[_Item], labeller: Any, config: LabelConfig, precision: str) -> dict[int, Any]:
    """``{item index: (probabilities row) or error string}`` for the items that have an image."""
    import torch

    from janus_build.train.runtime import autocast

    todo = [i for i, it in enumerate(items) if it.status == "success" and it.offset is not None]
    dataset = _Images(shard.tar, [items[i] for i in todo], labeller.transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, num_workers=config.workers, collate_fn=_collate
    )
    out: dict[int, Any] = {}
    for positions, images, bad in loader:
        for position, error in bad:
            out[todo[position]] = error
        if images is not None:
            with autocast(labeller.device, precision):
                scores = labeller.scores(images).float().cpu()
            for position, row in zip(positions, scores):
                out[todo[position]] = row
    return out


def _rows(items: list[_Item], scored: dict[int, Any], head_ids: Sequence[int], config: LabelConfig) -> list[dict]:
    rows = []
    for i, item in enumerate(items):
        result = scored.get(i)
        row = {
            "key": item.key,
            "label": schemas.NO_LABEL,
            "confidence": None,
            "top_labels": [],
            "top_scores": [],
            "label_source": config.label_source,
            "truth": item.truth,
            "status": item.status,
            "error_message": item.error,
        }
        if isinstance(result, str) or (result is None and item.status == "success"):
            row.update(status="decode_error", error_message=result or "no image in the shard")
        elif result is not None:
            k = min(TOP_K, len(head_ids))
            scores, positions = result.topk(k)
            labels = [int(head_ids[p]) for p in positions.tolist()]
            row.update(top_labels=labels, top_scores=[float(s) for s in scores.tolist()], confidence=float(scores[0]))
            if row["confidence"] >= config.threshold:
                row["label"] = labels[0]
        row["labels"] = [row["label"]] if row["label"] != schemas.NO_LABEL else []
        rows.append(row)
    return rows


def _shard_stats(rows: list[dict]) -> dict[str, Any]:
    labelled = [r for r in rows if r["label"] != schemas.NO_LABEL]
    truth = [r for r in rows if r["truth"] is not None]
    correct = sum(1 for r in labelled if r["truth"] is not None and int(r["truth"]) == r["label"])
    return {
        "rows": len(rows),
        "labelled": len(labelled),
        "with_truth": len(truth),
        "correct": correct,
        "failures": dict(Counter(r["status"] for r in rows if r["status"] != "success")),
        "per_class": dict(Counter(str(r["label"]) for r in labelled)),
    }


def _summary(stats: Sequence[dict[str, Any]], config: LabelConfig) -> dict[str, Any]:
    rows = sum(s["rows"] for s in stats)
    labelled = sum(s["labelled"] for s in stats)
    per_class: Counter = Counter()
    for s in stats:
        per_class.update({int(k): v for k, v in s["per_class"].items()})
    summary: dict[str, Any] = {
        "rows": rows,
        "labelled": labelled,
        "utilization": labelled / rows if rows else 0.0,
        "label_source": config.label_source,
        "model": config.model,
        "pretrained": config.pretrained,
        "prompts": config.prompts if config.kind == "open_clip" else None,
        "threshold": config.threshold,
        "per_class": {str(k): per_class[k] for k in sorted(per_class)},
    }
    if config.truth_col:
        correct = sum(s["correct"] for s in stats)
        with_truth = sum(s["with_truth"] for s in stats)
        summary.update(
            label_accuracy=correct / labelled if labelled else 0.0,
            dataset_utilization=correct / with_truth if with_truth else 0.0,
            correct=correct,
        )
    return summary


def run(config: LabelConfig, progress: Progress, labeller: Any = None) -> dict[str, Any]:
    """Label every image of ``config.stage_dir``; returns the summary (also ``DIR/_stats.json``).

    A shard whose marker exists and whose input tar is unchanged is skipped, so a killed run
    resumes; ``labeller`` replaces the model (tests).
    """
    import pyarrow as pa

    from janus_build.label.models import load_labeller
    from janus_build.labels import load_label_set
    from janus_build.train.runtime import resolve_device, resolve_precision

    label_set = load_label_set(config.labels)
    head_ids = list(label_set.ids)
    shards = find_tar_shards(resolve_image_stage(config.stage_dir))
    inputs = [fingerprint_file(s.tar) for s in shards]
    with StageDir(config.out, "label", config, inputs, overwrite=config.overwrite, volatile_keys=VOLATILE) as stage:
        device = resolve_device(config.device)
        precision = resolve_precision(config.precision, device)
        names = [label_set.names[c] for c in head_ids]
        labeller = labeller or load_labeller(config, head_ids, names, device)
        progress.start("label", total=len(shards), unit="shards")
        for shard, fingerprint in zip(shards, inputs):
            if not stage.is_done(shard.name, fingerprint):
                items = _items(shard, config.truth_col)
                rows = _rows(items, _score(shard, items, labeller, config, precision), head_ids, config)
                table = (
                    pa.Table.from_pylist(rows, schema=schemas.MODEL_LABELS)
                    if rows
                    else schemas.MODEL_LABELS.empty_table()
                )
                stage.write_table(shard.name, table, schemas.MODEL_LABELS, f"label shard {shard.name}")
                stage.mark_done(shard.name, _shard_stats(rows), fingerprint)
            progress.advance("label")
        progress.finish("label")
        summary = _summary([stage.read_stats(n) for n in (s.name for s in shards)], config)
        atomic_write_json(stage.path / STATS_FILE, summary)
        stage.finish({k: summary[k] for k in ("rows", "labelled", "utilization", "label_source")})
    return summary
