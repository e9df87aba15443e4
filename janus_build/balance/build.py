"""``janus balance`` end to end: plan (or read the plan of an interrupted run), reshard, cards.

Layout of an output ``DIR`` (DIR itself is not a parquet directory; ``train/`` and ``val/`` are
image shard directories that open as-is in pyarrow, pandas, DuckDB and Spark)::

    DIR/_manifest.json, DIR/_lock     the core's stage files
    DIR/_selection.parquet            the selection plan (one row per sample, output order)
    DIR/train/, DIR/val/              NNNNN.tar + NNNNN.parquet + _stats/NNNNN.json
    DIR/stats.json                    everything the cards show, machine-readable
    DIR/README.md                     dataset card: Hugging Face YAML header + Markdown
    DIR/croissant.json                Croissant 1.0 JSON-LD
    DIR/ATTRIBUTION.tsv, DIR/class_counts.png
"""

from __future__ import annotations

import logging
import platform
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from janus_build import __version__
from janus_build.balance import provenance
from janus_build.balance.card import ATTRIBUTION_COLUMNS, ATTRIBUTION_TSV, MAX_ATTRIBUTION_IN_CARD, tsv_cell
from janus_build.balance.config import VOLATILE, BalanceConfig
from janus_build.balance.plan import SELECTION, SPLITS, Plan, check_inputs_unchanged, make_plan, read_plan, write_plan
from janus_build.balance.reshard import reshard
from janus_build.core.fsio import atomic_path, atomic_write_json
from janus_build.core.stage import StageDir, read_manifest
from janus_build.errors import InputError
from janus_build.labels import LabelSet, load_label_set
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

PLOT_NAME = "class_counts.png"
STATS_NAME = "stats.json"
CONTAMINATION_NAME = "_contamination.json"  # what a `janus dedup` stage directory may hold
_SUMMARY_COLUMNS = (
    "key",
    "label",
    "license",
    "label_source",
    "source_name",
    "caption_field",
    "status",
    "error_message",
    "title",
    "owner",
    "url",
    "owner_name",
    "page_url",
)


@dataclass
class BalanceResult:
    """What a run produced (also in ``DIR/stats.json`` and the manifest's summary)."""

    out: Path
    counts: dict[str, int]  # train / val images written
    shards: dict[str, list[str]]
    stats: dict[str, Any]
    written: int = 0  # samples written by this run (0 when every shard was already done)
    resumed_shards: int = 0
    short_classes: list[dict[str, Any]] = field(default_factory=list)


def _open_stage(config: BalanceConfig, plan: Plan) -> StageDir:
    inputs = [{"source": s.spec.name, "spec": s.spec.resolved().to_text()} for s in plan.sources]
    return StageDir(
        config.out,
        "balance",
        config.manifest_config(),
        inputs=inputs,
        overwrite=config.overwrite,
        volatile_keys=VOLATILE,
    )


def _plan_and_stage(config: BalanceConfig, label_set: LabelSet, progress: Progress) -> tuple[Plan, StageDir]:
    """The plan of an interrupted run with the same options, or a new one (written once the stage is open)."""
    plan_path = Path(config.out) / SELECTION
    if plan_path.is_file() and not config.overwrite:
        plan = read_plan(plan_path)
        stage = _open_stage(config, plan)  # refuses other options before anything is reused
        try:
            check_inputs_unchanged(plan, stage.path)
        except BaseException:
            stage.close()
            raise
        log.info("%s: resuming from the selection plan (%d samples)", stage.path, plan.table.num_rows)
        return plan, stage
    plan = make_plan(config, label_set, progress)  # nothing is written before the selection succeeded
    stage = _open_stage(config, plan)
    try:
        write_plan(stage.path / SELECTION, plan)
    except BaseException:
        stage.close()
        raise
    return plan, stage


def balance(config: BalanceConfig, progress: Progress = NULL_PROGRESS) -> BalanceResult:
    """Build balanced JANuS shards from labelled sources (``janus balance``).

    Args:
        config: the options (see :class:`~janus_build.balance.config.BalanceConfig`).
        progress: receives ``read sources``, ``hash images`` and ``write <split>`` progress.

    Returns:
        A :class:`BalanceResult` with counts, shard names and the statistics of the cards.

    Raises:
        ConfigError: bad options (including :class:`~janus_build.balance.select.BudgetError`).
        InputError: a source is unreadable, unlabelled, has labels outside the label set, or
            (with ``missing_images='error'``) lacks image bytes; the message names source and key.
        OutputError: ``--out`` holds something else, an earlier run with other options, or a
            plan whose inputs changed since.
    """
    label_set = load_label_set(config.labels)
    plan, stage = _plan_and_stage(config, label_set, progress)
    with stage:
        rules = {s.name: config.caption_rule(s) for s in config.sources}
        result = reshard(plan, stage.path, label_set, progress, rules)
        stats = _final_stats(config, plan, label_set, stage.path, result.shards)
        _write_outputs(stage.path, config, stats, label_set, plan)
        stage.finish(summary=_manifest_summary(stats, label_set, result.shards))
    counts = stats["samples"]
    log.info(
        "balance: %d train + %d val samples in %s (%d written, %d shard(s) already done)",
        counts["train"],
        counts["val"],
        stage.path,
        result.written,
        result.resumed,
    )
    return BalanceResult(
        out=stage.path,
        counts=counts,
        shards=result.shards,
        stats=stats,
        written=result.written,
        resumed_shards=result.resumed,
        short_classes=stats["short_classes"],
    )


run = balance  # the stage entry every stage has: run(config, progress)


# --- statistics of what was written ------------------------------------------------------------------
@dataclass
class _Tally:
    samples: Counter = field(default_factory=Counter)
    licences: Counter = field(default_factory=Counter)
    label_sources: Counter = field(default_factory=Counter)
    by_source_class: Counter = field(default_factory=Counter)
    captions_missing: int = 0
    invalid: Counter = field(default_factory=Counter)
    invalid_examples: list[list[str]] = field(default_factory=list)
    attribution: list[dict[str, str]] = field(default_factory=list)  # the first MAX_ATTRIBUTION_IN_CARD
    cc_by: int = 0

    def add(self, split: str, row: dict[str, Any], tsv: Any) -> None:
        if row["status"] != "success":
            self.invalid[row["status"]] += 1
            if len(self.invalid_examples) < 5:
                self.invalid_examples.append([row["key"], row["error_message"] or row["status"]])
            return
        self.samples[split] += 1
        self.licences[row["license"] or "(unknown)"] += 1
        self.label_sources[row["label_source"]] += 1
        self.by_source_class[(row["source_name"], row["label"])] += 1
        self.captions_missing += row["caption_field"] is None
        if provenance.is_cc_by(row["license"]):
            # credit the author by name and link the photo's page when the source has them
            entry = {k: row.get(k) or "" for k in ATTRIBUTION_COLUMNS}
            entry["owner"] = row.get("owner_name") or entry["owner"]
            entry["url"] = row.get("page_url") or entry["url"]
            tsv.write("\t".join(tsv_cell(entry[k]) for k in ATTRIBUTION_COLUMNS) + "\n")
            self.cc_by += 1
            if len(self.attribution) < MAX_ATTRIBUTION_IN_CARD:
                self.attribution.append(entry)


def _tally(out: Path, shards: dict[str, list[str]]) -> _Tally:
    """Count what the shards hold (read back from their indexes), streaming ``ATTRIBUTION.tsv``."""
    tally = _Tally()
    with atomic_path(out / ATTRIBUTION_TSV) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as tsv:
        tsv.write("\t".join(ATTRIBUTION_COLUMNS) + "\n")
        for split in SPLITS:
            for name in shards[split]:
                path = out / split / f"{name}.parquet"
                columns = [c for c in _SUMMARY_COLUMNS if c in pq.read_schema(path).names]
                for row in pq.read_table(path, columns=columns).to_pylist():
                    tally.add(split, row, tsv)
    return tally


def _final_stats(
    config: BalanceConfig, plan: Plan, label_set: LabelSet, out: Path, shards: dict[str, list[str]]
) -> dict[str, Any]:
    tally = _tally(out, shards)
    chosen = plan.stats
    by_source_class = tally.by_source_class
    source_names = list(chosen["sources"])
    sources = {
        name: {**s, "selected": sum(v for (n, _c), v in by_source_class.items() if n == name)}
        for name, s in chosen["sources"].items()
    }
    per_class = {}
    for cid in label_set.ids:
        selection = chosen["per_class_selection"][str(cid)]
        by_source = {n: by_source_class[(n, cid)] for n in source_names if by_source_class[(n, cid)]}
        per_class[str(cid)] = {
            "available": selection["available"],
            "pool": selection["pool"],
            "base": selection["base"],
            "planned": selection["selected"],
            "selected": sum(by_source.values()),
            "by_source": by_source,
        }
    return {
        "label_set": label_set.name,
        "num_classes": len(label_set),
        "classes": list(label_set.ids),
        "balance": config.balance,
        "seed": config.seed,
        "min_per_class": config.min_per_class,
        "max_per_class": config.max_per_class,
        "budget": chosen["budget"],
        "per_class_target": chosen["per_class_target"],
        "metaclip": chosen.get("metaclip"),
        "samples": {s: tally.samples[s] for s in SPLITS},
        "samples_planned": chosen["samples_planned"],
        "shards": shards,
        "sources": sources,
        "dedup": chosen["dedup"],
        "per_class": per_class,
        "short_classes": chosen["short_classes"],
        "invalid_images": {
            "count": sum(tally.invalid.values()),
            "by_status": dict(sorted(tally.invalid.items())),
            "examples": tally.invalid_examples,
        },
        "licenses": dict(sorted(tally.licences.items())),
        "label_sources": dict(sorted(tally.label_sources.items())),
        "label_accuracy": _label_accuracy(plan),
        "captions_missing": int(tally.captions_missing),
        "cc_by_samples": tally.cc_by,
        "attribution_in_card": tally.attribution,
        "contamination": _contamination(config, plan),
        "provenance": _build_provenance(config, plan),
    }


def _label_accuracy(plan: Plan) -> dict[str, Any]:
    """Measured label accuracy per source where the upstream stage recorded it: ``janus match
    --truth-col`` writes ``label_accuracy`` into the match output's ``_stats.json`` (``stats.json``
    in older outputs). None where unknown (ground truth, tags, matches without a truth column)."""
    import json

    found: dict[str, Any] = {}
    for source in plan.sources:
        value = None
        for name in ("_stats.json", "stats.json") if source.spec.match else ():
            path = Path(source.spec.match) / name
            try:
                value = json.loads(path.read_text()).get("label_accuracy") if path.is_file() else None
            except (OSError, ValueError, AttributeError):
                value = None
            if value is not None:
                break
        found[source.spec.name] = value if isinstance(value, (int, float)) else None
    return found


def _contamination(config: BalanceConfig, plan: Plan) -> dict[str, Any] | None:
    """Evaluation-set contamination figures: ``--contamination FILE``, else a ``_contamination.json``
    found in a source's image stage (or the stage directory whose ``images/`` it is); None when
    there is none."""
    import json

    candidates = [config.contamination_file()] if config.contamination else []
    for source in plan.sources:
        candidates.append(source.images_dir / CONTAMINATION_NAME)
        if read_manifest(source.images_dir.parent) is not None:  # a stage whose images/ this is
            candidates.append(source.images_dir.parent / CONTAMINATION_NAME)
    for path in candidates:
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: unreadable contamination report ({exc})") from None
            if not isinstance(data, dict):
                raise InputError(f"{path}: expected a JSON object (janus dedup's report)")
            return {"file": str(path.resolve()), "report": data}
    return None


def _build_provenance(config: BalanceConfig, plan: Plan) -> dict[str, Any]:
    """The command and versions that built the dataset, and the janus stages behind each source."""
    upstream = []
    for source in plan.sources:
        dirs = [
            source.images_dir,
            source.images_dir.parent,
            *(Path(p) for p in (source.spec.match, source.spec.captions) if p),
        ]
        for directory in dict.fromkeys(dirs):
            manifest = read_manifest(directory) if directory.is_dir() else None
            if manifest and manifest.get("stage"):
                upstream.append(
                    {
                        "source": source.spec.name,
                        "stage": manifest.get("stage"),
                        "directory": str(directory.resolve()),
                        "janus_build_version": manifest.get("janus_build_version"),
                        "config_sha256": manifest.get("config_sha256"),
                    }
                )
    return {
        "janus_build_version": __version__,
        "python": platform.python_version(),
        "command": list(config.command) if config.command else None,
        "upstream": upstream,
    }


def _write_outputs(out: Path, config: BalanceConfig, stats: dict[str, Any], label_set: LabelSet, plan: Plan) -> None:
    import numpy as np

    from janus_build.balance.card import write_card, write_plot
    from janus_build.balance.croissant import write_croissant

    atomic_write_json(out / STATS_NAME, {k: v for k, v in stats.items() if k != "attribution_in_card"})
    per_class = [stats["per_class"][str(c)] for c in label_set.ids]
    write_plot(
        out / PLOT_NAME,
        np.array([c["base"] for c in per_class]),
        np.array([c["available"] for c in per_class]),
        np.array([c["selected"] for c in per_class]),
        config.min_per_class,
        label_set.name,
    )
    write_card(out, config, stats, label_set, stats["attribution_in_card"], PLOT_NAME)
    write_croissant(out, config, stats, label_set)


def _manifest_summary(stats: dict[str, Any], label_set: LabelSet, shards: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "label_set": label_set.name,
        "classes": list(label_set.ids),
        "class_names": {str(c): label_set.names.get(c, "") for c in label_set.ids},
        "num_classes": len(label_set),
        "label_space_size": int(max(label_set.ids)) + 1,
        "samples": stats["samples"],
        "shards": {split: [f"{split}/{n}.tar" for n in names] for split, names in shards.items()},
        "budget": stats["budget"],
        "short_classes": len(stats["short_classes"]),
        "invalid_images": stats["invalid_images"]["count"],
    }
