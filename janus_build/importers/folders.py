"""``janus import folders``: an ImageNet-style class-folder tree -> an image stage.

``ROOT/<wnid>/*.JPEG`` (ImageNet train/val, -Sketch, -R, -A), ``ROOT/<index>/...`` (ImageNet-V2)
or folders named after a label file's class names become an image stage whose index carries
``label`` and ``label_source = ground_truth``. Images are copied as bytes (never re-encoded);
their format is sniffed from the bytes. Keys: :func:`file_keys` (``core.keys.path_key``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from janus_build import schemas
from janus_build.core.keys import path_key
from janus_build.core.stage import StageDir
from janus_build.errors import ConfigError, InputError
from janus_build.importers.common import MAX_EXAMPLES, FileSample, open_stage, summarise_index, write_image_shards
from janus_build.importers.config import DEFAULT_LICENSES, FILE_EXTENSIONS, UNKNOWN_LICENSE, FoldersImportConfig
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

_WNID = re.compile(r"n\d{8}")


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


def file_keys(prefix: str, files: list[str]) -> list[str]:
    """Keys of files given by POSIX paths relative to their root: ``path_key(prefix, path)``.

    The extension is dropped (``n01440764/n01440764_10026.JPEG`` -> ``imagenet-n01440764__n01440764_u10026``)
    unless two files of one folder share a stem (``a.jpg``, ``a.png``): those keep it. The
    escape of ``path_key`` is injective, so distinct paths give distinct keys; a collision left
    (only ``a.jpg`` beside ``a.jpg.png`` and ``a.png``) is an error naming both files.
    """
    stems = Counter(os.path.splitext(f)[0] for f in files)
    keys = [path_key(prefix, f, keep_extension=stems[os.path.splitext(f)[0]] > 1) for f in files]
    if len(set(keys)) != len(keys):
        seen: dict[str, str] = {}
        for key, file in zip(keys, files):
            if key in seen:
                raise InputError(f"{file} and {seen[key]}: both give key {key!r}; rename one of them")
            seen[key] = file
    return keys


def _listing(root: Path, config: FoldersImportConfig, label_set: Any) -> tuple[list[str], list[int], dict[str, Any]]:
    """The sorted image files under the class folders, their labels and what was skipped."""
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
    skips = {
        "skipped_folders": len(skipped),
        "skipped_folder_examples": skipped[:MAX_EXAMPLES],
        "skipped_root_files": loose,
        "skipped_other_files": other_files,
    }
    return files, labels, skips


def import_folders(config: FoldersImportConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Import a class-folder tree as an image stage with ground-truth labels.

    Returns:
        The summary also written to the manifest: rows, successes, failures by status,
        classes imported, label-set classes with no folder, skipped folders, shards.

    Raises:
        InputError: ROOT is missing or not a directory, holds folders that name no class, or no
            image at all.
        ConfigError: bad options (layout, shard size, source, a wnid layout without wnids).
        OutputError: --out holds something else, or an earlier run with other options.
    """
    from janus_build.labels import load_label_set

    source = config.source or ("custom" if config.layout == "name" else "imagenet")
    licence = config.license if config.license is not None else DEFAULT_LICENSES.get(source, UNKNOWN_LICENSE)
    root = Path(config.root)
    if not root.is_dir():
        raise InputError(f"ROOT {root}: no such directory (expected ROOT/<class folder>/<images>)")
    label_set = load_label_set(config.labels)
    files, labels, skips = _listing(root, config, label_set)
    keys = file_keys(config.key_prefix or source, files)
    listing = hashlib.sha256("\n".join(f"{f}\t{c}" for f, c in zip(files, labels)).encode()).hexdigest()
    fingerprint = {"listing_sha256": listing}
    inputs = [{"root": os.fspath(root.resolve()), "files": len(files), "listing_sha256": listing}]
    # An ImageNet path names one ImageNet file wherever it is imported (a real id, so balance
    # de-duplicates two copies); any other tree's relative paths say nothing across roots: its key.
    samples = (
        FileSample(
            key,
            root / file,
            {
                schemas.LABEL: label,
                schemas.LABEL_SOURCE: "ground_truth",
                schemas.SOURCE: source,
                schemas.SOURCE_ID: file if source == "imagenet" else key,
                schemas.URL: None,
                schemas.LICENSE: licence,
                schemas.OWNER: None,
                schemas.TITLE: "",
            },
        )
        for key, file, label in zip(keys, files, labels)
    )
    with open_stage(config, "import-folders", inputs) as stage:
        progress.start("import images", total=len(files), unit="images")
        counts = write_image_shards(
            stage,
            samples,
            shard_size=config.shard_size,
            workers=config.workers,
            index_schema=schemas.IMPORT_FOLDERS_INDEX,
            fingerprint=fingerprint,
            progress=progress,
        )
        progress.finish("import images")
        summary = _summarise(stage, label_set, counts, skips)
        stage.finish(summary)
    return summary


def _summarise(stage: StageDir, label_set: Any, counts: dict[str, int], skips: dict[str, Any]) -> dict[str, Any]:
    summary = summarise_index(stage)
    per_class = {int(c) for c in summary["per_class"]}
    missing = [c for c in label_set.ids if c not in per_class]
    if missing:
        log.warning("%d class(es) of label set %r have no image (e.g. %s)", len(missing), label_set.name, missing[:5])
    return {
        **summary,
        "label_set": label_set.name,
        "classes_imported": len(per_class),
        "classes_without_images": missing,
        **skips,
        "shards": counts["shards"],
        "shards_written": counts["shards_written"],
        "shards_skipped": counts["shards"] - counts["shards_written"],
    }
