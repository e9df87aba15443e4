"""The selection plan: every decision of ``janus balance``, made on the index only.

:func:`make_plan` reads the sources' slim indexes, orders, de-duplicates (hashing the images
whose sizes collide), pools, applies the policy and the budget, splits and shuffles. The result
is one row per selected sample in output order (``key``, ``label``, ``split``, output ``shard``,
where its image bytes lie, which metadata row to read) plus the selection's statistics, written
to ``DIR/_selection.parquet`` (statistics and source descriptions in the file's metadata). The
resharder (:mod:`janus_build.balance.reshard`) consumes it; a resumed run reads it instead of
selecting and hashing again (DataComp's shape: a filter writes an id subset, a resharder
consumes it and checks the counts).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from janus_build.balance import select as sel
from janus_build.balance.config import BalanceConfig
from janus_build.balance.sources import LoadedSource, SourceFiles, load_source
from janus_build.balance.spec import like_budget, parse_budget
from janus_build.core.fsio import write_parquet_atomic
from janus_build.core.keys import dedup_id
from janus_build.core.shards import ImageReader
from janus_build.core.stage import fingerprint_file, shard_name
from janus_build.errors import InputError, OutputError
from janus_build.labels import LabelSet
from janus_build.progress import Progress

log = logging.getLogger(__name__)

SELECTION = "_selection.parquet"
_META = b"janus.balance.plan"
SPLITS = ("train", "val")
#: photo ids shared across sources of these kinds name the same photo (YFCC100M is Flickr)
GLOBAL_ID_SPACES = {"flickr": "flickr", "yfcc": "flickr", "openimages": "openimages"}

PLAN_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # the output key (webdataset __key__)
        pa.field("source_key", pa.string(), nullable=False),  # the key in its source
        pa.field("source", pa.int32(), nullable=False),  # the source's position on the command line
        pa.field("label", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),  # output shard stem within the split
        pa.field("image_shard", pa.string()),  # where the image bytes lie in the source's image stage
        pa.field("image_ext", pa.string()),
        pa.field("image_offset", pa.int64()),
        pa.field("image_size", pa.int64()),
        pa.field("meta_row", pa.int64()),  # row of the source's metadata files
        pa.field("id_value", pa.string()),
        pa.field("url", pa.string()),
    ]
)


@dataclass
class Plan:
    """The selected samples in output order, how to read each source back, and the statistics."""

    table: pa.Table
    sources: list[SourceFiles]
    stats: dict[str, Any]
    fingerprints: list[list[dict[str, Any]]] = field(default_factory=list)
    option_files: list[dict[str, Any]] = field(default_factory=list)  # --exclude-keys files

    def split_rows(self, split: str) -> pa.Table:
        return self.table.filter(pc.equal(self.table.column("split"), split))

    def expected(self) -> dict[str, dict[str, int]]:
        """``{split: {shard: samples}}`` as planned (the resharder checks what it wrote against it)."""
        out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        pairs = zip(self.table.column("split").to_pylist(), self.table.column("shard").to_pylist())
        for (split, shard), n in sorted(Counter(pairs).items()):
            out[split][shard] = n
        return out


# --- reading and writing the plan ---------------------------------------------------------------
def write_plan(path: Path, plan: Plan) -> None:
    meta = {
        "stats": plan.stats,
        "sources": [s.to_json() for s in plan.sources],
        "fingerprints": plan.fingerprints,
        "option_files": plan.option_files,
    }
    table = plan.table.replace_schema_metadata({_META: json.dumps(meta, sort_keys=True).encode()})
    write_parquet_atomic(path, table)


def read_plan(path: Path) -> Plan:
    """Read ``_selection.parquet``.

    Raises:
        OutputError: the file is unreadable or not a balance plan.
    """
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[_META])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError) as exc:
        raise OutputError(f"{path}: not a readable selection plan ({exc}); pass --overwrite to select again") from None
    sources = [SourceFiles.from_json(s) for s in meta["sources"]]
    return Plan(
        table.replace_schema_metadata(None), sources, meta["stats"], meta["fingerprints"], meta.get("option_files", [])
    )


def check_inputs_unchanged(plan: Plan, out: Path) -> None:
    """Raise :class:`OutputError` when a source file changed since the plan was made."""
    for source, recorded in zip(plan.sources, plan.fingerprints):
        now = source.fingerprints()
        if now != recorded:
            changed = next((r["path"] for r, n in zip(recorded, now) if r != n), None) or "its file list"
            raise OutputError(
                f"--out {out}: source {source.spec.name!r} changed since the selection was made ({changed}); "
                "pass --overwrite to select again"
            )
    for recorded in plan.option_files:
        if fingerprint_file(recorded["path"]) != recorded:
            raise OutputError(
                f"--out {out}: {recorded['path']} changed since the selection was made; pass --overwrite to select again"
            )


# --- making the plan ----------------------------------------------------------------------------------
@dataclass
class _Candidates:
    """Every source's candidates in one table, in preference order."""

    table: pa.Table
    src: np.ndarray
    labels: np.ndarray
    classes: np.ndarray  # position of the label in the label set


def make_plan(config: BalanceConfig, label_set: LabelSet, progress: Progress) -> Plan:
    """Select the samples of a balance run (nothing is written).

    Raises:
        ConfigError: bad options, including :class:`~janus_build.balance.select.BudgetError`.
        InputError: a source is unreadable, unlabelled, or two sources' keys cannot be told apart.
    """
    sources = _load_sources(config, label_set, progress)
    cands = _order(sources, config.seed, label_set)
    keep, dedup = _deduplicate(cands, sources, config, progress)
    choice = _Choice.make(cands, keep, sources, config, label_set)
    table = _output_table(cands, choice.chosen, sources, config)
    stats = _selection_stats(sources, cands, keep, dedup, choice, config, label_set)
    stats["samples_planned"] = {s: int(pc.sum(pc.equal(table.column("split"), s)).as_py() or 0) for s in SPLITS}
    files = [s.files() for s in sources]
    options = [fingerprint_file(p) for p in config.exclude_keys]
    return Plan(table, files, stats, [s.fingerprints() for s in files], options)


def _load_sources(config: BalanceConfig, label_set: LabelSet, progress: Progress) -> list[LoadedSource]:
    progress.start("read sources", len(config.sources), "sources")
    sources = []
    for position, spec in enumerate(config.sources):
        loaded = load_source(
            spec, position, label_set, unknown_labels=config.unknown_labels, missing_images=config.missing_images
        )
        sources.append(loaded)
        progress.advance("read sources")
    progress.finish("read sources")
    if config.exclude_keys:
        _exclude(sources, _read_keys(config.exclude_keys))
    return sources


def _read_keys(files: tuple[str, ...]) -> pa.Array:
    """The keys of ``--exclude-keys`` files (each a parquet file with a ``key`` column)."""
    pieces = []
    for path in files:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"--exclude-keys {path}: unreadable parquet ({exc})") from None
        if "key" not in table.column_names:
            raise InputError(f"--exclude-keys {path}: no 'key' column (columns: {', '.join(table.column_names)})")
        pieces.append(pc.cast(table.column("key"), pa.string()).combine_chunks())
    return pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())


def _exclude(sources: list[LoadedSource], keys: pa.Array) -> None:
    """Leave listed source keys out (e.g. ``janus dedup``'s evaluation-set near-duplicates), counted
    per source as ``excluded`` with example keys."""
    for s in sources:
        listed = pc.fill_null(pc.is_in(s.candidates.column("key"), value_set=keys), False)
        count = int(pc.sum(listed).as_py() or 0)
        if count:
            s.examples["excluded"] = s.candidates.filter(listed).column("key").slice(0, 5).to_pylist()
            s.counts["excluded"] += count
            s.counts["candidates"] -= count
            s.candidates = s.candidates.filter(pc.invert(listed))
        if s.candidates.num_rows == 0:
            raise InputError(f"source {s.spec.name!r}: every usable sample is listed in --exclude-keys")


def _order(sources: list[LoadedSource], seed: int, label_set: LabelSet) -> _Candidates:
    """Concatenate the candidates in preference order: priority, weighted seeded key, source position."""
    cands = pa.concat_tables([s.candidates for s in sources])
    src = np.concatenate([np.full(s.candidates.num_rows, s.position, dtype=np.int32) for s in sources])
    priority = np.array([s.spec.priority for s in sources], dtype=np.int64)[src]
    weight = np.array([s.spec.weight for s in sources], dtype=np.float64)[src]
    u = sel.seeded_uniform(cands.column("key"), seed, "select")
    order = np.lexsort((src, sel.efraimidis_keys(u, weight), priority))
    table = cands.append_column("source", pa.array(src, pa.int32())).take(pa.array(order)).combine_chunks()
    for s in sources:
        s.candidates = None  # type: ignore[assignment]  # the ordered table holds them now
    labels = table.column("label").to_numpy().astype(np.int64)
    lookup = np.full(max(max(label_set.ids), int(labels.max(initial=0))) + 1, -1, dtype=np.int64)
    lookup[np.asarray(label_set.ids)] = np.arange(len(label_set))
    return _Candidates(table, src[order], labels, lookup[labels])


def _id_space(source: SourceFiles) -> str:
    """Photo ids are compared within an id space: Flickr's (flickr, yfcc), OpenImages', or the
    source's own image stage (a ``custom`` id such as a relative path means nothing elsewhere)."""
    return GLOBAL_ID_SPACES.get(source.spec.source_kind, f"stage:{source.images_dir}")


def _dedup_ids(namespaces: list[str], src: np.ndarray, values: pa.ChunkedArray) -> pa.Array:
    """:func:`janus_build.core.keys.dedup_id` of every row, in Arrow: ``namespace \\x1f value``
    (null where the value is null or blank, so the row takes no part in that check)."""
    values = values.combine_chunks()
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)
    prefixes = pa.array(namespaces, pa.string()).take(pa.array(src))
    joined = pc.binary_join_element_wise(prefixes, values, dedup_id("", ""))
    return pc.if_else(blank, pa.nulls(len(values), pa.string()), joined)


def _deduplicate(
    cands: _Candidates, sources: list[LoadedSource], config: BalanceConfig, progress: Progress
) -> tuple[np.ndarray, sel.Dedup]:
    table = cands.table
    stages = [f"stage:{s.images_dir}" for s in sources]  # a key names one sample within one image stage
    spaces = [_id_space(s) for s in sources]
    key_ids = _dedup_ids(stages, cands.src, table.column("key"))
    id_ids = _dedup_ids(spaces, cands.src, table.column("id_value"))
    sizes = np.asarray(pc.fill_null(table.column("image_size"), -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    offsets = np.asarray(pc.fill_null(table.column("image_offset"), -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    encoded = pc.dictionary_encode(table.column("shard")).combine_chunks()
    shard_codes, shard_names = encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()

    def image_hash(rows: np.ndarray) -> list[bytes]:
        progress.start("hash images", len(rows), "images")
        digests: dict[int, bytes] = {}
        with ImageReader() as reader:
            sequential = rows[np.lexsort((offsets[rows], shard_codes[rows], cands.src[rows]))]
            for row in sequential.tolist():
                path = sources[cands.src[row]].images_dir / Path(shard_names[shard_codes[row]]).name
                digests[row] = hashlib.sha256(reader.read(path, int(offsets[row]), int(sizes[row]))).digest()
                progress.advance("hash images")
        progress.finish("hash images")
        return [digests[int(r)] for r in rows]

    checks = tuple(dict.fromkeys(("key", *config.dedup)))  # an output key is a webdataset __key__
    keys = table.column("key")
    return sel.deduplicate(keys, key_ids, id_ids, table.column("url"), sizes, cands.labels, checks, image_hash)


def _rank_within(classes: np.ndarray, mask: np.ndarray, num_classes: int) -> np.ndarray:
    """For rows in preference order, each masked row's rank within its class (others: -1)."""
    rank = np.full(len(classes), -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    if len(idx):
        cls = classes[idx]
        order = np.argsort(cls, kind="stable")
        sorted_cls = cls[order]
        starts = np.searchsorted(sorted_cls, np.arange(num_classes))
        rank[idx[order]] = np.arange(len(idx)) - starts[sorted_cls]
    return rank


@dataclass
class _Choice:
    """What the policy chose: per-class counts at each step, the quota plan, the chosen rows."""

    chosen: np.ndarray
    base_counts: np.ndarray
    available: np.ndarray
    pool_counts: np.ndarray
    selected: np.ndarray
    quota: sel.QuotaPlan
    dedup_by_source: Counter
    budget_unit: int | None
    short: list[dict[str, Any]]
    metaclip: dict[str, Any] | None = None

    @classmethod
    def make(
        cls,
        cands: _Candidates,
        keep: np.ndarray,
        sources: list[LoadedSource],
        config: BalanceConfig,
        label_set: LabelSet,
    ) -> _Choice:
        num_classes, classes = len(label_set), cands.classes
        is_fill = np.array([s.spec.role == "fill" for s in sources], dtype=bool)[cands.src]
        base, fill = keep & ~is_fill, keep & is_fill
        base_counts = np.bincount(classes[base], minlength=num_classes)
        deficit = np.maximum(0, (config.min_per_class or 0) - base_counts)
        fill_rank = _rank_within(classes, fill, num_classes)
        pool = base | (fill & (fill_rank >= 0) & (fill_rank < deficit[classes]))
        metaclip = None
        if config.balance == "metaclip":
            pool, metaclip = _metaclip(cands, pool, config, num_classes)
        pool_counts = np.bincount(classes[pool], minlength=num_classes)
        dedup_by_source = Counter(cands.src[keep].tolist())
        unit, budget_samples = _budget(config, sources, dedup_by_source)
        like = like_budget(config.budget)
        if like:  # 1x = the other dataset's size
            unit = budget_samples = int(like_counts(like, label_set).sum())
        quota = (
            _like_quota(like, pool_counts, config, label_set)
            if like
            else sel.quotas(
                pool_counts,
                balance="none" if config.balance == "metaclip" else config.balance,
                min_per_class=config.min_per_class,
                max_per_class=None if config.balance == "metaclip" else config.max_per_class,
                budget_samples=budget_samples,
                tie_order=sel.class_tie_order(num_classes, config.seed),
                describe_pool=lambda: _describe(sources, cands.src[pool]),
            )
        )
        chosen = pool & (_rank_within(classes, pool, num_classes) < quota.quota[classes])
        selected = np.bincount(classes[chosen], minlength=num_classes)
        available = np.bincount(classes[keep], minlength=num_classes)
        short = _short_classes(selected, config, quota, label_set)
        return cls(chosen, base_counts, available, pool_counts, selected, quota, dedup_by_source, unit, short, metaclip)


def like_counts(directory: Path, label_set: LabelSet) -> np.ndarray:
    """Per-class sample counts (label-set order) of a balance output's written samples, train and val."""
    position = {c: i for i, c in enumerate(label_set.ids)}
    counts = np.zeros(len(label_set), dtype=np.int64)
    for split in SPLITS:
        for path in sorted((directory / split).glob("*.parquet")):
            table = pq.read_table(path, columns=["label", "status"]).to_pylist()
            for row in table:
                if row["status"] == "success" and row["label"] in position:
                    counts[position[row["label"]]] += 1
    return counts


def _like_quota(directory: Path, pool: np.ndarray, config: BalanceConfig, label_set: LabelSet) -> sel.QuotaPlan:
    """``--budget like:DIR``: each class gets what it has in DIR (the paper's size control), or all it has."""
    target = like_counts(directory, label_set)
    quota = np.minimum(pool, target)
    if config.max_per_class is not None:
        quota = np.minimum(quota, config.max_per_class)
    short = int((target - quota).sum())
    if short:
        log.warning("--budget like:%s: %d sample(s) short of its per-class counts", directory, short)
    return sel.QuotaPlan(quota=quota.astype(np.int64), target=None, budget_samples=int(target.sum()))


def _describe(sources: list[LoadedSource], pooled_src: np.ndarray) -> str:
    pooled = Counter(pooled_src.tolist())
    return ", ".join(f"{s.spec.name}: {pooled[s.position]:,}" for s in sources)


def _budget(
    config: BalanceConfig, sources: list[LoadedSource], dedup_by_source: Counter
) -> tuple[int | None, int | None]:
    budget = parse_budget(config.budget)
    if budget is None:
        return None, None
    if config.budget_unit.isdigit():
        unit = int(config.budget_unit)
    else:
        unit = int(dedup_by_source[[s.spec.name for s in sources].index(config.budget_unit)])
    samples = sel.budget_to_samples(budget[0], budget[1], unit)
    if samples < 1:
        raise sel.BudgetError(
            f"--budget {config.budget} with --budget-unit {config.budget_unit} ({unit:,} samples) is less than one sample"
        )
    return unit, samples


def _metaclip(
    cands: _Candidates, pool: np.ndarray, config: BalanceConfig, num_classes: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Restrict the pool to the samples MetaCLIP's sampling keeps (see :func:`select.metaclip_keep`)."""
    rows = np.flatnonzero(pool)
    entry_rows, entry_classes = [rows], [cands.classes[rows]]
    extra = cands.table.column("all_labels").combine_chunks()
    if extra.null_count < len(extra):  # a match output's every matched class counts
        parents = pc.list_parent_indices(extra).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(extra).to_numpy(zero_copy_only=False).astype(np.int64)
        lookup = _class_lookup(cands, flat)
        ok = pool[parents] & (flat >= 0) & (flat < len(lookup))
        ok[ok] = lookup[flat[ok]] >= 0
        entry_rows.append(parents[ok])
        entry_classes.append(lookup[flat[ok]])
    pairs = np.unique(np.concatenate(entry_rows) * num_classes + np.concatenate(entry_classes))
    keys = cands.table.column("key").to_pylist()
    t = int(config.max_per_class or 0)
    kept, count = sel.metaclip_keep(pairs // num_classes, pairs % num_classes, keys, num_classes, t, config.seed)
    mask = np.zeros(len(pool), dtype=bool)
    mask[kept] = True
    return mask, {"t": t, "entries_per_class": count.tolist(), "kept": int(len(kept)), "pool": int(len(rows))}


def _class_lookup(cands: _Candidates, extra_labels: np.ndarray) -> np.ndarray:
    """Label id -> class position (-1 outside the label set), sized for every id seen."""
    size = int(max(cands.labels.max(initial=0), extra_labels.max(initial=0))) + 1
    lookup = np.full(size, -1, dtype=np.int64)
    lookup[cands.labels] = cands.classes
    return lookup


def _short_classes(
    selected: np.ndarray, config: BalanceConfig, quota: sel.QuotaPlan, label_set: LabelSet
) -> list[dict[str, Any]]:
    minimum = config.min_per_class or (quota.target if config.balance == "equal" else None)
    if not minimum:
        return []
    short = []
    for c in np.flatnonzero(selected < minimum):
        cid = label_set.ids[c]
        count = int(selected[c])
        short.append(
            {
                "class_id": cid,
                "name": label_set.names.get(cid, ""),
                "count": count,
                "minimum": int(minimum),
                "deficit": int(minimum - count),
            }
        )
    if short:
        log.warning(
            "%d class(es) short of their minimum of %d, e.g. %s",
            len(short),
            minimum,
            ", ".join(f"{s['class_id']} {s['name']} ({s['count']})" for s in short[:3]),
        )
    return short


def _clashing_keys(cands: _Candidates, sources: list[LoadedSource]) -> set[str]:
    """Keys that two different image stages of the run use (for different samples)."""
    stage_index: dict[str, int] = {}
    of_source = [stage_index.setdefault(str(s.images_dir), len(stage_index)) for s in sources]
    if len(stage_index) < 2:
        return set()
    stages = pa.array(np.asarray(of_source, dtype=np.int32)[cands.src])
    counted = (
        pa.table({"key": cands.table.column("key"), "stage": stages})
        .group_by("key")
        .aggregate([("stage", "count_distinct")])
    )
    return set(counted.filter(pc.greater(counted.column("stage_count_distinct"), 1)).column("key").to_pylist())


def _output_keys(cands: _Candidates, rows: np.ndarray, sources: list[LoadedSource]) -> list[str]:
    """Output keys of ``rows``: the source key, or ``<source name>-<key>`` when another image stage
    of the run holds the same key for a different sample (two imports of folders sharing relative
    paths). Raises :class:`InputError` if even that leaves two samples with one key."""
    clash = _clashing_keys(cands, sources)
    keys = cands.table.column("key").take(pa.array(rows)).to_pylist()
    src = cands.src[rows].tolist()
    out = [f"{sources[s].spec.name}-{k}" if k in clash else k for k, s in zip(keys, src)]
    seen: dict[str, int] = {}
    for k, s in zip(out, src):
        if k in seen:
            names = sorted({sources[seen[k]].spec.name, sources[s].spec.name})
            raise InputError(
                f"sources {names[0]!r} and {names[-1]!r}: two different samples would both be written as key {k!r}; "
                "re-import one of them with another --key-prefix"
            )
        seen[k] = s
    return out


def _output_table(
    cands: _Candidates, chosen: np.ndarray, sources: list[LoadedSource], config: BalanceConfig
) -> pa.Table:
    """The chosen rows in output order: split by a stable hash of the source key, seeded shuffle."""
    rows = np.flatnonzero(chosen)
    picked = cands.table.take(pa.array(rows))
    keys = _output_keys(cands, rows, sources)
    is_val = sel.stable_fraction(picked.column("key")) < config.val_fraction
    order = np.argsort(sel.seeded_uniform(keys, config.seed, "shuffle"), kind="stable")
    picked, is_val = picked.take(pa.array(order)), is_val[order]
    keys = [keys[i] for i in order.tolist()]
    split = np.where(is_val, "val", "train")
    shard = np.empty(len(rows), dtype=object)
    for name in SPLITS:
        where = np.flatnonzero(split == name)
        shard[where] = [shard_name(i // config.shard_size) for i in range(len(where))]
    return pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "source_key": picked.column("key"),
            "source": picked.column("source"),
            "label": picked.column("label"),
            "split": pa.array(split.tolist(), pa.string()),
            "shard": pa.array(shard.tolist(), pa.string()),
            "image_shard": picked.column("shard"),
            "image_ext": picked.column("image_ext"),
            "image_offset": picked.column("image_offset"),
            "image_size": picked.column("image_size"),
            "meta_row": picked.column("meta_row"),
            "id_value": picked.column("id_value"),
            "url": picked.column("url"),
        },
        schema=PLAN_SCHEMA,
    )


def _selection_stats(
    sources: list[LoadedSource],
    cands: _Candidates,
    keep: np.ndarray,
    dedup: sel.Dedup,
    choice: _Choice,
    config: BalanceConfig,
    label_set: LabelSet,
) -> dict[str, Any]:
    """What the selection decided, for the cards and ``stats.json`` (JSON-ready)."""
    budget_samples = choice.quota.budget_samples
    return {
        "budget": {
            "requested": config.budget,
            "unit": choice.budget_unit,
            "samples": budget_samples,
            "selected": int(choice.chosen.sum()),
        },
        "per_class_target": choice.quota.target,
        "metaclip": choice.metaclip,
        "sources": {
            s.spec.name: {
                "kind": s.spec.source_kind,
                "label_source": s.label_source,
                "priority": s.spec.priority,
                "weight": s.spec.weight,
                "role": s.spec.role,
                **{k: int(v) for k, v in sorted(s.counts.items())},
                "after_dedup": int(choice.dedup_by_source[s.position]),
                "examples": {k: v for k, v in sorted(s.examples.items())},
            }
            for s in sources
        },
        "dedup": {
            "removed": dedup.removed,
            "label_conflicts": dedup.label_conflicts,
            "images_hashed": dedup.images_hashed,
            "examples": {k: [list(p) for p in v] for k, v in dedup.examples.items()},
        },
        "per_class_selection": {
            str(cid): {
                "base": int(choice.base_counts[c]),
                "available": int(choice.available[c]),
                "pool": int(choice.pool_counts[c]),
                "selected": int(choice.selected[c]),
            }
            for c, cid in enumerate(label_set.ids)
        },
        "short_classes": choice.short,
    }
