"""``janus balance`` end to end: read the sources' indexes, select, write shards, card and plot."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from janus_build import schemas
from janus_build.balance import select as sel
from janus_build.balance.card import (
    ATTRIBUTION_COLUMNS,
    ATTRIBUTION_TSV,
    MAX_ATTRIBUTION_IN_CARD,
    tsv_cell,
    write_card,
    write_plot,
)
from janus_build.balance.sources import LoadedSource, load_source
from janus_build.balance.spec import BalanceConfig, parse_budget
from janus_build.core.fsio import atomic_path, atomic_write_json
from janus_build.core.shards import ImageShardWriter
from janus_build.core.stage import ShardDir, StageDir
from janus_build.errors import InputError
from janus_build.labels import load_label_set
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
PLOT_NAME = "class_counts.png"
STATS_NAME = "stats.json"
_LICENSE_COLUMNS = ("license", "LICENSE", "licence")
_OWNER_COLUMNS = ("owner", "ownername", "owner_name", "author")
_TITLE_COLUMNS = ("title", "TITLE")
_OWNER_NAME_COLUMNS = ("owner_name", "ownername")  # attribution prefers these to an owner id
_PAGE_URL_COLUMNS = ("page_url",)
# what a match source's rows may take from its image stage's index when the match output lacks it
_PROVENANCE_FALLBACK = (*_LICENSE_COLUMNS, *_OWNER_COLUMNS, *_TITLE_COLUMNS)


@dataclass
class BalanceResult:
    """What a run produced (also in ``DIR/stats.json`` and the manifest's summary)."""

    out: Path
    counts: dict[str, int]  # train / val samples
    shards: dict[str, list[str]]
    stats: dict[str, Any]
    written: int = 0  # samples written by this run (0 when every shard was already done)
    resumed_shards: int = 0
    short_classes: list[dict[str, Any]] = field(default_factory=list)


class _TarReader:
    """Read image bytes by offset, keeping a bounded number of source tars open."""

    def __init__(self, limit: int = 64) -> None:
        self._open: OrderedDict[Path, Any] = OrderedDict()
        self._limit = limit

    def read(self, path: Path, offset: int, size: int) -> bytes:
        handle = self._open.get(path)
        if handle is None:
            if len(self._open) >= self._limit:
                _, old = self._open.popitem(last=False)
                old.close()
            handle = self._open[path] = open(path, "rb")
        else:
            self._open.move_to_end(path)
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise InputError(f"{path}: truncated (wanted {size} bytes at offset {offset})")
        return data

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()


def _to_jpeg(data: bytes, ext: str | None) -> bytes:
    if (ext or "jpg").lower() in ("jpg", "jpeg"):
        return data
    from janus_build.core.imaging import open_image

    buffer = io.BytesIO()
    open_image(data).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """Dictionary-encode a string column: small integer codes per row and the distinct values."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    codes = np.asarray(pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False), dtype=np.int32)
    values = encoded.dictionary.to_pylist() or [None]
    return codes, values


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


def _first_string(record: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = record.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _read_captions(source: LoadedSource, keys: pa.Array) -> pa.Table | None:
    if not source.spec.captions:
        return None
    directory = Path(source.spec.captions)
    where = f"source {source.spec.name!r} captions={directory}"
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else ([directory] if directory.is_file() else [])
    if not files:
        raise InputError(f"{where}: no caption parquet files")
    wanted = (
        "key",
        "caption_blip",
        "caption_blip_spellchecked",
        "caption_blip_title",
        "prose_caption",
        *source.spec.caption_columns,
    )
    pieces = []
    for path in files:
        names = pq.read_schema(path).names
        if "key" not in names:
            raise InputError(f"{where}: {path.name} has no 'key' column")
        table = pq.read_table(path, columns=[c for c in dict.fromkeys(wanted) if c in names])
        pieces.append(table.filter(pc.is_in(table.column("key"), value_set=keys)))
    return pa.concat_tables(pieces, promote_options="permissive")


class _SourceRows:
    """The selected rows of one source with full metadata, captions and provenance, by meta_row."""

    def __init__(self, source: LoadedSource, meta_rows: np.ndarray) -> None:
        self.source = source
        rows = np.unique(meta_rows)
        self.meta = source.read_metadata(rows)
        self._rows = self.meta.column("_meta_row").to_numpy()
        keys = (
            self.meta.column("key").combine_chunks() if "key" in self.meta.column_names else pa.array([], pa.string())
        )
        captions = _read_captions(source, keys)
        self.captions = None
        if captions is not None:
            pos = pc.index_in(keys, value_set=captions.column("key"))
            self.captions = captions.take(pos)  # null rows where a key has no caption
        self.index_meta = source.index_metadata(keys, _PROVENANCE_FALLBACK)

    def records(self, meta_rows: np.ndarray) -> list[dict[str, Any]]:
        """Full metadata (captions merged in) of ``meta_rows``, as dicts, in the given order."""
        take = pa.array(np.searchsorted(self._rows, meta_rows), pa.int64())
        records = self.meta.drop_columns(["_meta_row"]).take(take).to_pylist()
        if self.index_meta:
            for record in records:
                for name, value in self.index_meta.get(str(record.get("key")), {}).items():
                    if value is not None and str(value).strip() and _first_string(record, (name,)) is None:
                        record[name] = value
        if self.captions is not None:
            for record, caption in zip(records, self.captions.take(take).to_pylist()):
                for name, value in caption.items():
                    if name != "key":
                        record[name] = value
        return records

    def caption(self, record: dict[str, Any]) -> tuple[str, str | None]:
        """The first non-empty caption column of the source's preference list, and its name."""
        for name in self.source.spec.caption_columns:
            value = record.get(name)
            if value is not None and str(value).strip():
                return str(value).strip(), name
        return "", None


def balance(config: BalanceConfig, progress: Progress = NULL_PROGRESS) -> BalanceResult:
    """Build balanced JANuS shards from labelled sources (``janus balance``).

    Args:
        config: the options (see :class:`~janus_build.balance.spec.BalanceConfig`).
        progress: receives ``read sources``, ``de-duplicate`` and ``write <split>`` progress.

    Returns:
        A :class:`BalanceResult` with counts, shard names and the statistics of the card.

    Raises:
        ConfigError: bad options (including :class:`~janus_build.balance.select.BudgetError`).
        InputError: a source is unreadable, unlabelled, has labels outside the label set, or
            (with ``missing_images='error'``) lacks image bytes; the message names source and key.
        OutputError: ``--out`` holds something else or an earlier run with other options.
    """
    label_set = load_label_set(config.labels)
    num_classes = len(label_set)
    budget = parse_budget(config.budget)

    # -- 1. slim indexes ---------------------------------------------------------------------
    progress.start("read sources", len(config.sources), "sources")
    sources: list[LoadedSource] = []
    for position, spec in enumerate(config.sources):
        sources.append(
            load_source(
                spec, position, label_set, unknown_labels=config.unknown_labels, missing_images=config.missing_images
            )
        )
        progress.advance("read sources")
    progress.finish("read sources")

    # -- 2. one candidate table in preference order -----------------------------------------
    cands = pa.concat_tables([s.candidates for s in sources])
    src = np.concatenate([np.full(s.candidates.num_rows, s.position, dtype=np.int32) for s in sources])
    local = np.concatenate([np.arange(s.candidates.num_rows, dtype=np.int64) for s in sources])
    priority = np.array([s.spec.priority for s in sources], dtype=np.int64)[src]
    weight = np.array([s.spec.weight for s in sources], dtype=np.float64)[src]
    u = sel.seeded_uniform(cands.column("key"), config.seed, "select")
    order = np.lexsort((src, sel.efraimidis_keys(u, weight), priority))  # priority, then weighted key
    del u, priority, weight
    src, local = src[order], local[order]
    # the candidate index stays in Arrow (compact); Python objects only for a shard's rows at a time
    ordered = cands.take(pa.array(order)).combine_chunks()
    del cands, order
    for s in sources:  # only meta_row is needed from here on (to read the selected rows' metadata)
        s.candidates = s.candidates.select(["meta_row"])
    labels = ordered.column("label").to_numpy().astype(np.int64)
    sizes = np.asarray(pc.fill_null(ordered.column("image_size"), -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    offsets = np.asarray(
        pc.fill_null(ordered.column("image_offset"), -1).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    shard_codes, shard_names = _codes(ordered.column("shard"))
    ext_codes, ext_names = _codes(ordered.column("image_ext"))
    kinds = [s.spec.source_kind for s in sources]
    namespace_of = {kind: i for i, kind in enumerate(dict.fromkeys("flickr" if k == "yfcc" else k for k in kinds))}
    namespaces = np.array([namespace_of["flickr" if k == "yfcc" else k] for k in kinds], dtype=np.int64)[src]
    reader = _TarReader()

    def image_path(row: int) -> Path:
        return sources[src[row]].images_dir / Path(shard_names[shard_codes[row]]).name

    def read_jpeg(row: int) -> bytes:
        return _to_jpeg(reader.read(image_path(row), int(offsets[row]), int(sizes[row])), ext_names[ext_codes[row]])

    def image_hash(rows: np.ndarray) -> list[bytes]:
        progress.start("hash images", len(rows), "images")
        digests: dict[int, bytes] = {}
        for row in rows[np.lexsort((offsets[rows], shard_codes[rows], src[rows]))].tolist():  # sequential reads
            digests[row] = hashlib.sha256(reader.read(image_path(row), int(offsets[row]), int(sizes[row]))).digest()
            progress.advance("hash images")
        progress.finish("hash images")
        return [digests[int(r)] for r in rows]

    keep, dedup = sel.deduplicate(
        ordered.column("key"),
        ordered.column("id_value"),
        namespaces,
        ordered.column("url"),
        sizes,
        labels,
        tuple(dict.fromkeys(("key", *config.dedup))),  # keys are always unique: they are the webdataset __key__
        image_hash,
    )
    lookup = np.full(max(max(label_set.ids), int(labels.max(initial=0))) + 1, -1, dtype=np.int64)
    lookup[np.asarray(label_set.ids)] = np.arange(num_classes)
    classes = lookup[labels]

    # -- 3. pool: base samples + fill samples up to --min-per-class --------------------------
    is_fill = np.array([s.spec.role == "fill" for s in sources], dtype=bool)[src]
    base = keep & ~is_fill
    fill = keep & is_fill
    base_counts = np.bincount(classes[base], minlength=num_classes)
    fill_rank = _rank_within(classes, fill, num_classes)
    deficit = np.maximum(0, (config.min_per_class or 0) - base_counts)
    pool = base | (fill & (fill_rank >= 0) & (fill_rank < deficit[classes]))
    available = np.bincount(classes[keep], minlength=num_classes)
    pool_counts = np.bincount(classes[pool], minlength=num_classes)

    # -- 4. quotas ----------------------------------------------------------------------------
    dedup_by_source = Counter(src[keep].tolist())
    if budget is None:
        budget_samples, unit = None, None
    else:
        unit = (
            int(config.budget_unit)
            if config.budget_unit.isdigit()
            else int(dedup_by_source[[s.spec.name for s in sources].index(config.budget_unit)])
        )
        budget_samples = sel.budget_to_samples(budget[0], budget[1], unit)
        if budget_samples < 1:
            raise sel.BudgetError(
                f"--budget {config.budget} with --budget-unit {config.budget_unit} ({unit:,} samples) is less than one sample"
            )

    def describe_pool() -> str:
        pooled = Counter(src[pool].tolist())
        return ", ".join(f"{s.spec.name}: {pooled[s.position]:,}" for s in sources)

    plan = sel.quotas(
        pool_counts,
        balance=config.balance,
        min_per_class=config.min_per_class,
        max_per_class=config.max_per_class,
        budget_samples=budget_samples,
        tie_order=sel.class_tie_order(num_classes, config.seed),
        describe_pool=describe_pool,
    )
    pool_rank = _rank_within(classes, pool, num_classes)
    chosen = pool & (pool_rank < plan.quota[classes])
    selected_counts = np.bincount(classes[chosen], minlength=num_classes)

    short = []
    minimum = config.min_per_class or (plan.target if config.balance == "equal" else None)
    if minimum:
        for c in np.flatnonzero(selected_counts < minimum):
            cid = label_set.ids[c]
            short.append(
                {
                    "class_id": cid,
                    "name": label_set.names.get(cid, ""),
                    "count": int(selected_counts[c]),
                    "minimum": int(minimum),
                    "deficit": int(minimum - selected_counts[c]),
                }
            )
        if short:
            log.warning(
                "%d class(es) short of their minimum of %d, e.g. %s",
                len(short),
                minimum,
                ", ".join(f"{s['class_id']} {s['name']} ({s['count']})" for s in short[:3]),
            )

    # -- 5. split and output order --------------------------------------------------------------
    rows = np.flatnonzero(chosen)
    chosen_keys = ordered.column("key").take(pa.array(rows))
    is_val = sel.stable_fraction(chosen_keys) < config.val_fraction
    shuffle = np.argsort(sel.seeded_uniform(chosen_keys, config.seed, "shuffle"), kind="stable")
    rows, is_val = rows[shuffle], is_val[shuffle]

    # -- 6. metadata of the selected rows, then the shards (nothing is written before this) ----
    stage = StageDir(
        config.out,
        "balance",
        config.manifest_config(),
        inputs=[{"source": s.spec.name, "spec": s.spec.to_text(), "rows": int(s.counts["rows"])} for s in sources],
        overwrite=config.overwrite,
    )
    out = stage.path

    meta_rows_col = {s.position: s.candidates.column("meta_row").to_numpy() for s in sources}
    per_source: dict[int, _SourceRows] = {}
    for s in sources:
        mine = rows[src[rows] == s.position]
        if len(mine):
            per_source[s.position] = _SourceRows(s, meta_rows_col[s.position][local[mine]])

    result_shards: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    written = resumed = 0
    licence_counts: Counter = Counter()
    label_source_counts: Counter = Counter()
    by_source_class: dict[str, Counter] = {s.spec.name: Counter() for s in sources}
    attribution: list[dict[str, str]] = []  # the first MAX_ATTRIBUTION_IN_CARD; all go to ATTRIBUTION.tsv
    attribution_count = 0
    stack = contextlib.ExitStack()  # ATTRIBUTION.tsv is streamed and appears only if every shard was written
    attribution_out = open(stack.enter_context(atomic_path(out / ATTRIBUTION_TSV)), "w", encoding="utf-8", newline="\n")
    stack.callback(attribution_out.close)
    stack.enter_context(contextlib.closing(reader))
    attribution_out.write("\t".join(ATTRIBUTION_COLUMNS) + "\n")
    caption_missing = 0
    with stack:
        for split in SPLITS:
            split_rows = rows[is_val] if split == "val" else rows[~is_val]
            counts[split] = int(len(split_rows))
            split_dir = out / split
            split_dir.mkdir(parents=True, exist_ok=True)
            names = []
            progress.start(f"write {split}", int(len(split_rows)), "samples")
            for number, start in enumerate(range(0, len(split_rows), config.shard_size)):
                name = f"{number:05d}"
                names.append(name)
                chunk = split_rows[start : start + config.shard_size]
                records = []
                metas: dict[int, dict[str, Any]] = {}
                for position in np.unique(src[chunk]).tolist():
                    mine = chunk[src[chunk] == position]
                    found = per_source[position].records(meta_rows_col[position][local[mine]])
                    metas.update(zip(mine.tolist(), found))
                taken = ordered.select(["key", "id_value", "url"]).take(pa.array(chunk)).to_pydict()
                for j, row in enumerate(chunk.tolist()):
                    key, source_id, url = taken["key"][j], taken["id_value"][j], taken["url"][j]
                    s = sources[src[row]]
                    rows_of = per_source[s.position]
                    meta = metas[row]
                    caption, caption_field = rows_of.caption(meta)
                    cid = int(labels[row])
                    record = {
                        "key": key,
                        "label": cid,
                        "caption": caption,
                        "source": s.spec.source_kind,
                        "source_id": source_id or key,
                        "url": url,
                        "license": _first_string(meta, _LICENSE_COLUMNS),
                        "owner": _first_string(meta, _OWNER_COLUMNS),
                        "title": _first_string(meta, _TITLE_COLUMNS),
                        "label_source": s.label_source,
                        "split": split,
                        "source_name": s.spec.name,
                        "class_name": label_set.names.get(cid, ""),
                        "caption_field": caption_field,
                    }
                    records.append((row, record, meta))
                    licence_counts[record["license"] or "(unknown)"] += 1
                    label_source_counts[s.label_source] += 1
                    by_source_class[s.spec.name][cid] += 1
                    caption_missing += caption_field is None
                    if _is_cc_by(record["license"]):
                        entry = {k: record[k] or "" for k in ATTRIBUTION_COLUMNS}
                        # credit the author by name and link the photo's page when the source has them
                        # (Flickr: owner is the NSID, owner_name the name; url the file, page_url the page)
                        entry["owner"] = _first_string(meta, _OWNER_NAME_COLUMNS) or entry["owner"]
                        entry["url"] = _first_string(meta, _PAGE_URL_COLUMNS) or entry["url"]
                        attribution_out.write("\t".join(tsv_cell(entry[k]) for k in ATTRIBUTION_COLUMNS) + "\n")
                        attribution_count += 1
                        if len(attribution) < MAX_ATTRIBUTION_IN_CARD:
                            attribution.append(entry)
                if ShardDir(split_dir).is_done(name):
                    resumed += 1
                else:
                    _write_shard(split_dir, name, records, read_jpeg)
                    written += len(records)
                progress.advance(f"write {split}", len(chunk))
            progress.finish(f"write {split}")
            result_shards[split] = names

    # -- 7. stats, card, plot, manifest -----------------------------------------------------------
    stats = {
        "label_set": label_set.name,
        "num_classes": num_classes,
        "classes": list(label_set.ids),
        "balance": config.balance,
        "seed": config.seed,
        "min_per_class": config.min_per_class,
        "max_per_class": config.max_per_class,
        "budget": {"requested": config.budget, "unit": unit, "samples": budget_samples, "selected": int(len(rows))},
        "per_class_target": plan.target,
        "samples": counts,
        "shards": result_shards,
        "sources": {
            s.spec.name: {
                "kind": s.spec.source_kind,
                "label_source": s.label_source,
                "priority": s.spec.priority,
                "weight": s.spec.weight,
                "role": s.spec.role,
                **{k: int(v) for k, v in sorted(s.counts.items())},
                "after_dedup": int(dedup_by_source[s.position]),
                "selected": int(sum(by_source_class[s.spec.name].values())),
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
        "per_class": {
            str(cid): {
                "available": int(available[c]),
                "pool": int(pool_counts[c]),
                "selected": int(selected_counts[c]),
                "by_source": {n: int(by_source_class[n][cid]) for n in by_source_class if by_source_class[n][cid]},
            }
            for c, cid in enumerate(label_set.ids)
        },
        "short_classes": short,
        "licenses": dict(sorted(licence_counts.items())),
        "label_sources": dict(sorted(label_source_counts.items())),
        "captions_missing": int(caption_missing),
        "cc_by_samples": attribution_count,
    }
    atomic_write_json(out / STATS_NAME, stats)
    write_plot(out / PLOT_NAME, base_counts, available, selected_counts, config.min_per_class, label_set.name)
    write_card(out, config, stats, label_set, attribution, PLOT_NAME)
    stage.finish(
        summary={
            "label_set": label_set.name,
            "classes": list(label_set.ids),
            "class_names": {str(c): label_set.names.get(c, "") for c in label_set.ids},
            "num_classes": num_classes,
            "label_space_size": int(max(label_set.ids)) + 1,
            "samples": counts,
            "shards": {split: [f"{split}/{n}.tar" for n in names] for split, names in result_shards.items()},
            "budget": stats["budget"],
            "short_classes": len(short),
        }
    )
    log.info(
        "balance: %d train + %d val samples in %s (%d written, %d shard(s) already done)",
        counts["train"],
        counts["val"],
        out,
        written,
        resumed,
    )
    return BalanceResult(
        out=out,
        counts=counts,
        shards=result_shards,
        stats=stats,
        written=written,
        resumed_shards=resumed,
        short_classes=short,
    )


def _is_cc_by(licence: str | None) -> bool:
    """CC licences that require attribution (BY, BY-SA, BY-NC, BY-ND, ...; Flickr's 'Attribution ...')."""
    if not licence:
        return False
    text = licence.lower()
    if "attribution" in text:
        return True
    tokens = re.split(r"[^a-z0-9]+", text)
    return "by" in tokens and ("cc" in tokens or "creativecommons" in text)


def _write_shard(
    split_dir: Path, name: str, records: list[tuple[int, dict[str, Any], dict[str, Any]]], image_of
) -> None:
    """Write one output shard: tar and index (typed to the contract) atomically, the stats marker last."""
    index_schema = pa.schema([*schemas.BALANCE_INDEX, *schemas.BALANCE_EXTRA])
    writer = ImageShardWriter(split_dir, name, mtime=0, index_schema=index_schema)  # mtime 0: byte-identical tars
    try:
        for row, record, meta in records:
            full = dict(record)
            full["source_metadata"] = meta
            full_json = json.dumps(full, sort_keys=True, ensure_ascii=False, default=_json_value)
            writer.write(
                record["key"],
                image_of(row),
                record,
                image_ext="jpg",
                # "json" replaces the writer's own json member with the full metadata
                extra={"cls": str(record["label"]), "txt": record["caption"], "json": full_json},
            )
    except BaseException:
        writer.abort()
        raise
    writer.close({"split": split_dir.name})
