"""``janus import``: bring existing image collections into the image-stage format.

Three importers, each writing (or preparing) an image stage (:mod:`janus_build.images`:
``NNNNN.tar`` + ``NNNNN.parquet`` + ``NNNNN_stats.json``, ``manifest.json``):

* :func:`import_folders`: an ImageNet-style class-folder tree (``ROOT/<wnid>/*.JPEG``,
  ``ROOT/<index>/...`` as ImageNet-V2, or folders named after a label file's class names) ->
  an image stage whose index carries ``label`` and ``label_source = ground_truth``.
* :func:`import_img2dataset`: img2dataset webdataset output -> an image stage keyed by a column
  img2dataset saved (``--save_additional_columns``), e.g. the ``janus match`` key.
* :func:`write_url_list`: the labelled rows of a ``janus match`` output as an img2dataset input
  list (the match ``key`` renamed, because img2dataset reserves ``key`` for its own numbering).

Images are copied as bytes (never re-encoded); their format is sniffed from the bytes, not the
file name. Unreadable, empty or undecodable files become rows with ``status`` and
``error_message``. Output shards are resumable (a shard whose ``_stats.json`` exists is
skipped) and deterministic (sorted inputs, tar members with mtime 0).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from janus_build import schemas
from janus_build.core.fsio import atomic_parquet_writer
from janus_build.core.imaging import sniff_image_ext
from janus_build.core.img2dataset import img2dataset_shards, rekey_img2dataset_shard
from janus_build.core.shards import ImageShardWriter
from janus_build.core.stage import ShardDir, StageDir, read_manifest, shard_name
from janus_build.errors import ConfigError, InputError, OutputError
from janus_build.import_config import (
    DEFAULT_LICENSES,
    FILE_EXTENSIONS,
    LAYOUTS,
    UNKNOWN_LICENSE,
    FoldersImportConfig,
    Img2datasetImportConfig,
    UrlListConfig,
)
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

_WNID = re.compile(r"n\d{8}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_EXAMPLES = 10


# --- shared helpers ------------------------------------------------------------------------
@dataclass(frozen=True)
class _FileResult:
    data: bytes | None
    ext: str | None
    status: str
    error: str | None
    width: int | None = None
    height: int | None = None


def _read_image_file(path: Path) -> _FileResult:
    """Read one file and check it is a JPEG/PNG/WebP whose header PIL can parse."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _FileResult(None, None, "read_error", f"{type(exc).__name__}: {exc}")
    if not data:
        return _FileResult(None, None, "empty_file", "the file is empty (0 bytes)")
    ext = sniff_image_ext(data)
    if ext is None:
        return _FileResult(None, None, "unknown_format", f"not a JPEG, PNG or WebP (first bytes {data[:8].hex()})")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:  # parses the header only; no full decode
            width, height = image.size
    except Exception as exc:  # PIL raises many kinds on bad headers
        message = re.sub(r" ?<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc))  # no object addresses: rows are deterministic
        return _FileResult(None, None, "decode_error", f"{type(exc).__name__}: {message}")
    return _FileResult(data, ext, "success", None, width, height)


# --- folders -------------------------------------------------------------------------------
def _folder_classes(root: Path, layout: str, label_set: Any) -> tuple[list[tuple[str, int]], list[str], int]:
    """(class folders with their label, skipped folder names, loose files in ROOT)."""
    if layout == "wnid":
        if not label_set.wnids:
            raise ConfigError(
                f"--layout wnid: label set {label_set.name!r} has no wnid column; use --layout name or index"
            )
        by_name = {wnid: class_id for class_id, wnid in label_set.wnids.items()}
    elif layout == "index":
        by_name = {str(class_id): class_id for class_id in label_set.ids}
    else:
        counts = Counter(label_set.names.values())
        by_name = {name: class_id for class_id, name in label_set.names.items() if counts[name] == 1}
        ambiguous = {name for name, n in counts.items() if n > 1}
    classes: list[tuple[str, int]] = []
    skipped: list[str] = []
    unknown: list[str] = []
    loose = 0
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            loose += 1
            continue
        folder = entry.name
        if folder in by_name:
            classes.append((folder, by_name[folder]))
        elif layout == "wnid" and _WNID.fullmatch(folder) or layout == "index" and folder.isdigit():
            skipped.append(folder)
        elif layout == "name" and folder in ambiguous:
            raise InputError(
                f"{root / folder}: class name {folder!r} names several classes of label set {label_set.name!r}; "
                "use --layout wnid or index, or a label file with unique names"
            )
        else:
            unknown.append(folder)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:MAX_EXAMPLES]) + (" ..." if len(unknown) > MAX_EXAMPLES else "")
        expected = {
            "wnid": "a WordNet id such as n01440764",
            "index": "a class id (an integer) such as 0 or 291",
            "name": f"a class name of label set {label_set.name!r}",
        }[layout]
        raise InputError(f"{root}: {len(unknown)} folder(s) whose name is not {expected} (--layout {layout}): {shown}")
    return classes, skipped, loose


def _relative_files(root: Path, folder: str) -> tuple[list[str], int]:
    """Image files under ``root/folder`` (recursively) as sorted POSIX relative paths; other files counted."""
    files: list[str] = []
    other = 0
    for dirpath, dirnames, filenames in os.walk(root / folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for filename in filenames:
            if filename.startswith("."):
                continue
            if os.path.splitext(filename)[1].lower() in FILE_EXTENSIONS:
                files.append(str(rel_dir / filename))
            else:
                other += 1
    return sorted(files), other


def folder_key(prefix: str, relative_path: str) -> str:
    """``<prefix>-<relative path without extension>``, '/' -> '-', other unsafe characters -> '_'."""
    stem = os.path.splitext(relative_path)[0]
    return "-".join([_UNSAFE.sub("_", prefix), *(_UNSAFE.sub("_", part) for part in stem.split("/"))])


def _assign_keys(prefix: str, files: list[str]) -> list[str]:
    keys = [folder_key(prefix, f) for f in files]
    counts = Counter(keys)
    if len(counts) == len(keys):
        return keys
    # Two paths sanitised to one key (a.jpg and a.png, or 'a b' and 'a_b'): disambiguate by path hash.
    return [k if counts[k] == 1 else f"{k}-{hashlib.sha1(f.encode()).hexdigest()[:10]}" for k, f in zip(keys, files)]


def import_folders(config: FoldersImportConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Import a class-folder tree as an image stage with ground-truth labels.

    Returns:
        The summary also written to ``manifest.json``: rows, successes, failures by status,
        classes imported, label-set classes with no folder, skipped folders, shards.

    Raises:
        InputError: ROOT is missing or not a directory, holds folders that name no class, or no
            image at all.
        ConfigError: bad options (layout, shard size, source, a wnid layout without wnids).
        OutputError: --out holds something else, or an earlier run over a different file list.
    """
    from janus_build.labels import load_label_set

    if config.layout not in LAYOUTS:
        raise ConfigError(f"--layout: {config.layout!r} is not one of {', '.join(LAYOUTS)}")
    if config.shard_size < 1:
        raise ConfigError(f"--shard-size: must be at least 1, got {config.shard_size}")
    source = config.source or ("custom" if config.layout == "name" else "imagenet")
    if source not in schemas.SOURCES:
        raise ConfigError(f"--source: {source!r} is not one of {', '.join(schemas.SOURCES)}")
    licence = config.license if config.license is not None else DEFAULT_LICENSES.get(source, UNKNOWN_LICENSE)
    prefix = config.key_prefix or source
    root = Path(config.root)
    if not root.exists():
        raise InputError(f"ROOT {root}: no such directory")
    if not root.is_dir():
        raise InputError(f"ROOT {root}: not a directory (expected ROOT/<class folder>/<images>)")
    label_set = load_label_set(config.labels)

    classes, skipped, loose = _folder_classes(root, config.layout, label_set)
    files: list[str] = []
    labels: list[int] = []
    other_files = 0
    for folder, class_id in classes:
        found, other = _relative_files(root, folder)
        files += found
        labels += [class_id] * len(found)
        other_files += other
    if not files:
        raise InputError(
            f"ROOT {root}: no image files (.jpg/.jpeg/.png/.webp) in folders of label set {label_set.name!r} "
            f"(--layout {config.layout}; {len(skipped)} folder(s) skipped as not in the label set)"
        )
    if skipped:
        log.info(
            "%d folder(s) not in label set %r skipped (e.g. %s)", len(skipped), label_set.name, ", ".join(skipped[:5])
        )
    if loose or other_files:
        log.warning("skipped %d file(s) directly in ROOT and %d non-image file(s) in class folders", loose, other_files)
    keys = _assign_keys(prefix, files)
    listing = hashlib.sha256("\n".join(f"{f}\t{c}" for f, c in zip(files, labels)).encode()).hexdigest()
    inputs = [{"root": os.fspath(root.resolve()), "files": len(files), "listing_sha256": listing}]

    earlier = None if config.overwrite else (StageDir.read_manifest(config.out) if Path(config.out).is_dir() else None)
    if earlier and earlier.get("stage") == "import-folders":
        old = (earlier.get("inputs") or [{}])[0]
        if old.get("listing_sha256") != listing:
            raise OutputError(
                f"--out {config.out}: an earlier run imported another file list ({old.get('files')} files then, "
                f"{len(files)} now); pass --overwrite to start again (shards would not line up)"
            )
    stage = StageDir(config.out, "import-folders", config, inputs, overwrite=config.overwrite)

    task = "import images"
    progress.start(task, total=len(files), unit="images")
    written = 0
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        for start in range(0, len(files), config.shard_size):
            name = shard_name(start // config.shard_size)
            chunk = range(start, min(start + config.shard_size, len(files)))
            if stage.is_done(name):
                progress.advance(task, len(chunk))
                continue
            writer = ImageShardWriter(stage.path, name, mtime=0, index_schema=schemas.IMPORT_FOLDERS_INDEX)
            try:
                results = pool.map(_read_image_file, (root / files[i] for i in chunk))
                for i, result in zip(chunk, results):
                    metadata = {
                        schemas.LABEL: labels[i],
                        schemas.LABEL_SOURCE: "ground_truth",
                        schemas.SOURCE: source,
                        schemas.SOURCE_ID: files[i],
                        schemas.URL: None,
                        schemas.LICENSE: licence,
                        schemas.OWNER: None,
                        schemas.TITLE: "",
                        "width": result.width,
                        "height": result.height,
                    }
                    writer.write(
                        keys[i],
                        result.data,
                        metadata,
                        image_ext=result.ext or "jpg",
                        status=result.status,
                        error_message=result.error,
                    )
                    progress.advance(task)
            except BaseException:
                writer.abort()
                raise
            writer.close({"first_source_id": files[chunk[0]], "last_source_id": files[chunk[-1]]})
            written += 1
    progress.finish(task)
    summary = _summarise(stage, label_set, skipped, loose, other_files, written)
    stage.finish(summary)
    return summary


def _summarise(
    stage: StageDir, label_set: Any, skipped: list[str], loose: int, other: int, written: int
) -> dict[str, Any]:
    import pyarrow.parquet as pq

    statuses: Counter[str] = Counter()
    per_class: Counter[int] = Counter()
    examples: dict[str, list[str]] = {}
    shards = stage.done_shards()
    for name in shards:
        table = pq.read_table(stage.shard_path(name), columns=["key", "label", "status", "source_id"])
        for key, label, status, source_id in zip(
            *(table.column(c).to_pylist() for c in ("key", "label", "status", "source_id"))
        ):
            statuses[status] += 1
            if status == "success":
                per_class[label] += 1
            elif len(examples.setdefault(status, [])) < MAX_EXAMPLES:
                examples[status].append(source_id)
    missing = [c for c in label_set.ids if c not in per_class]
    if missing:
        log.warning("%d class(es) of label set %r have no image (e.g. %s)", len(missing), label_set.name, missing[:5])
    failures = {k: v for k, v in sorted(statuses.items()) if k != "success"}
    if failures:
        log.warning(
            "files that are not usable images, kept as rows: %s", ", ".join(f"{k} {v}" for k, v in failures.items())
        )
    return {
        "rows": sum(statuses.values()),
        "successes": statuses["success"],
        "failures": failures,
        "failure_examples": examples,
        "label_set": label_set.name,
        "classes_imported": len(per_class),
        "classes_without_images": missing,
        "per_class": {str(c): per_class[c] for c in sorted(per_class)},
        "skipped_folders": len(skipped),
        "skipped_folder_examples": skipped[:MAX_EXAMPLES],
        "skipped_root_files": loose,
        "skipped_other_files": other,
        "shards": len(shards),
        "shards_written": written,
        "shards_skipped": len(shards) - written,
    }


# --- img2dataset ---------------------------------------------------------------------------
_I2D_OWN = ("key", "status", "error_message")  # img2dataset's columns that the image index redefines


def import_img2dataset(config: Img2datasetImportConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Re-key an img2dataset webdataset output into an image stage (one output shard per input shard).

    Every parquet column is kept (img2dataset's ``key`` as ``i2d_key``); ``source``,
    ``source_id`` (= the key), ``url``, ``license`` and ``title`` (from ``caption_col``) are added.
    Rows without a key are left out and counted; failed downloads stay rows.

    Raises:
        InputError: the input is missing, holds no finished img2dataset shard, or lacks ``key_col``
            (the message lists the columns present and the img2dataset flag that saves it); a key
            holds '.' or '/'.
        OutputError: --out holds something else, or an earlier run with other options.
    """
    import pyarrow.parquet as pq

    src = Path(config.input)
    if not src.is_dir():
        raise InputError(f"DIR {src}: no such directory (expected img2dataset's --output_folder)")
    finished, unfinished = img2dataset_shards(src)
    if not finished:
        raise InputError(f"DIR {src}: no finished img2dataset shard (NNNNN.tar + NNNNN.parquet + NNNNN_stats.json)")
    if unfinished:
        log.warning(
            "%d img2dataset shard(s) unfinished, not imported (re-run img2dataset, then this): %s",
            len(unfinished),
            ", ".join(unfinished[:5]),
        )
    if config.source not in schemas.SOURCES:
        raise ConfigError(f"--source: {config.source!r} is not one of {', '.join(schemas.SOURCES)}")
    columns = pq.read_schema(src / f"{finished[0]}.parquet").names
    if config.key_col not in columns:
        raise InputError(
            f"{src / (finished[0] + '.parquet')}: no column {config.key_col!r} (--key-col); columns present: "
            f"{', '.join(columns)}. Save it when downloading: img2dataset ... --save_additional_columns "
            f"'[\"{config.key_col}\"]' (img2dataset refuses the name 'key'; janus import url-list writes 'janus_key')"
        )
    inputs = [{"input": os.fspath(src.resolve()), "shards": len(finished)}]
    stage = StageDir(config.out, "import-img2dataset", config, inputs, overwrite=config.overwrite)

    def row_for(sample: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        value = sample.get(config.key_col)
        if value is None or str(value) == "":
            return None
        key = f"{config.key_prefix}{value}"
        if "." in key or "/" in key:
            raise InputError(
                f"{src}: {config.key_col} {key!r} (img2dataset key {sample.get('key')}) contains '.' or '/', "
                "which a webdataset key cannot hold; sanitise the keys of the download list"
            )
        metadata = {k: v for k, v in sample.items() if k not in _I2D_OWN and k != config.key_col}
        metadata["i2d_key"] = sample.get("key")
        metadata.update(
            {
                schemas.SOURCE: config.source,
                schemas.SOURCE_ID: str(value),
                schemas.URL: sample.get("url"),
                schemas.LICENSE: config.license,
                schemas.TITLE: sample.get(config.caption_col) or "",
            }
        )
        return key, metadata

    task = "import img2dataset"
    progress.start(task, total=len(finished), unit="shards")
    written = 0
    for name in finished:
        if not stage.is_done(name):
            rekey_img2dataset_shard(
                src, name, stage.path, row_for, mtime=0, index_schema=schemas.IMPORT_IMG2DATASET_INDEX
            )
            written += 1
        progress.advance(task)
    progress.finish(task)
    totals: Counter[str] = Counter()
    for name in stage.done_shards():
        for field in ("count", "successes", "failed", "skipped", "duplicate_keys"):
            totals[field] += int(stage.read_stats(name).get(field, 0))
    summary = {
        "rows": totals["count"],
        "successes": totals["successes"],
        "failed": totals["failed"],
        "skipped_without_key": totals["skipped"],
        "duplicate_keys": totals["duplicate_keys"],
        "shards": len(stage.done_shards()),
        "shards_written": written,
        "shards_skipped": len(finished) - written,
        "unfinished_input_shards": unfinished,
    }
    stage.finish(summary)
    return summary


# --- url list for img2dataset --------------------------------------------------------------
def write_url_list(config: UrlListConfig) -> dict[str, Any]:
    """Write the labelled rows of a ``janus match`` output as one img2dataset input parquet.

    Columns: ``key_col`` (the match key), the URL column and, when present, the text column,
    under their own names. Finished match shards only, in shard order.

    Raises:
        InputError: not a match output, or the URL column is missing.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    match_dir = Path(config.match_dir)
    manifest = read_manifest(match_dir) if match_dir.is_dir() else None
    if manifest is None or manifest.get("stage") != "match":
        raise InputError(f"MATCH_DIR {match_dir}: not a janus match output (no manifest.json of stage 'match')")
    shards = [n for n in ShardDir(match_dir).done_shards() if (match_dir / f"{n}.parquet").is_file()]
    if not shards:
        raise InputError(f"MATCH_DIR {match_dir}: no finished match shard")
    names = pq.read_schema(match_dir / f"{shards[0]}.parquet").names
    url_col = config.url_col or next((c for c in ("URL", "url") if c in names), None)
    if url_col is None or url_col not in names:
        raise InputError(
            f"MATCH_DIR {match_dir}: no URL column ({config.url_col or 'URL or url'}); columns present: {', '.join(names)}"
        )
    text_col = config.text_col or next((c for c in ("TEXT", "text", "caption") if c in names), None)
    if config.text_col and config.text_col not in names:
        raise InputError(
            f"MATCH_DIR {match_dir}: no column {config.text_col!r} (--text-col); columns present: {', '.join(names)}"
        )
    columns = [schemas.KEY, url_col] + ([text_col] if text_col else [])
    out_names = [config.key_col, url_col] + ([text_col] if text_col else [])
    schema = pa.schema([pa.field(n, pa.string()) for n in out_names])
    rows = kept = 0
    out = Path(config.out)
    with atomic_parquet_writer(out, schema) as writer:
        for name in shards:
            table = pq.read_table(match_dir / f"{name}.parquet", columns=columns + [schemas.LABEL])
            rows += table.num_rows
            if not config.all_rows:
                table = table.filter(pc.greater_equal(table.column(schemas.LABEL), 0))
            table = table.select(columns).rename_columns(out_names)
            table = table.filter(pc.is_valid(table.column(url_col)))
            writer.write_table(table.cast(schema))
            kept += table.num_rows
    log.info("%s: %d of %d match row(s) written", out, kept, rows)
    return {
        "rows": rows,
        "written": kept,
        "url_col": url_col,
        "text_col": text_col,
        "key_col": config.key_col,
        "out": os.fspath(out),
    }
