"""``janus import openimages``: Open Images (V6/V7) CSVs + Localized Narratives -> OI100.

Reads Google's files as distributed:

* human image-level labels (``oidv7-train-annotations-human-imagelabels.csv``: ``ImageID,
  Source, LabelName, Confidence``); only ``Confidence`` 1 is a positive label;
* the image list (``oidv6-train-images-with-labels-with-rotation.csv``: ``ImageID, Subset,
  OriginalURL, OriginalLandingURL, License, AuthorProfileURL, Author, Title, OriginalSize,
  OriginalMD5, Thumbnail300KURL, Rotation``);
* optionally the class descriptions (``oidv7-class-descriptions.csv`` with its header
  ``LabelName,DisplayName``, or the header-less ``class-descriptions.csv`` of older releases) and
  Localized Narratives (``open_images_train_v6_captions.jsonl``: ``dataset_id, image_id,
  annotator_id, caption, ...``) as ``annot_caption``.

A mapping (``LabelName`` -> class id; by default classnames/openimages_in1k.tsv, derived from the
JANuS authors' published mapping) turns positive labels into classes of ``--labels``. An image
whose labels map to exactly one class gets it as ``label`` (``label_source = mapped``); several
classes make it ambiguous (left out, or kept with ``label`` -1 on request).

Streaming: the labels file is read once keeping only mapped positives, the narratives keeping
only those of selected images, the image list emitting selected rows in file order; memory
grows with the images selected, not with the files. With ``--image-dir`` (a local download of
``<ImageID>.jpg`` files) the output is an image stage, otherwise a metadata stage for
``janus import url-list`` and img2dataset.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.stage import StageDir
from janus_build.errors import InputError
from janus_build.importers.common import (
    MAX_EXAMPLES,
    FileSample,
    RowShards,
    clean_html,
    describe_inputs,
    inputs_fingerprint,
    license_name,
    open_stage,
    open_text,
    summarise_index,
    write_image_shards,
)
from janus_build.importers.config import OpenImagesConfig
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("ImageID", "OriginalURL", "License", "Author", "Title")
LABEL_COLUMNS = ("ImageID", "LabelName", "Confidence")
DEFAULT_MAPPING = "openimages_in1k.tsv"


def _csv_rows(path: Path, required: tuple[str, ...], flag: str) -> Iterator[dict[str, str]]:
    """Rows of a CSV with a header naming at least ``required``."""
    with open_text(path, ".csv") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{flag} {path}: empty file")
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(
                f"{flag} {path}: missing column(s) {', '.join(missing)}; header: {', '.join(header) or '(none)'}"
            )
        for row in reader:
            if row:
                yield dict(zip(header, row))


def load_mapping(path: Path | None, label_ids: set[int]) -> dict[str, int]:
    """``LabelName`` -> class id from a TSV (``LabelName``, ``class_id``; ``#`` comments),
    keeping the classes of the label set."""
    from janus_build.resources import project_dir

    path = Path(path) if path else project_dir("classnames") / DEFAULT_MAPPING
    if not path.is_file():
        raise InputError(f"--mapping {path}: no such file (expected a TSV with LabelName and class_id)")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows or not {"LabelName", "class_id"} <= set(rows[0]):
        raise InputError(f"--mapping {path}: expected a tab-separated header with LabelName and class_id")
    mapping: dict[str, int] = {}
    for number, row in enumerate(rows, 2):
        try:
            class_id = int(row["class_id"])
        except (TypeError, ValueError):
            raise InputError(
                f"--mapping {path}, row {number}: class_id {row['class_id']!r} is not an integer"
            ) from None
        if class_id in label_ids:
            mapping[row["LabelName"].strip()] = class_id
    if not mapping:
        raise InputError(f"--mapping {path}: no LabelName maps to a class of the label set")
    return mapping


def load_class_names(path: Path) -> dict[str, str]:
    """``LabelName`` -> ``DisplayName`` (V7's header row and older header-less files alike)."""
    names: dict[str, str] = {}
    with open_text(path, ".csv") as handle:
        for row in csv.reader(handle):
            if len(row) >= 2 and row[0] != "LabelName":
                names[row[0].strip()] = row[1].strip()
    return names


@dataclass
class Selection:
    """The images whose human labels map to classes, with what the files said about them."""

    classes: dict[str, set[int]] = field(default_factory=dict)
    mids: dict[str, set[str]] = field(default_factory=dict)
    narratives: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


def select_images(labels_csv: Path, mapping: dict[str, int]) -> Selection:
    """Read the human labels once, keeping positive (Confidence 1) labels that map to a class."""
    selection = Selection()
    for row in _csv_rows(labels_csv, LABEL_COLUMNS, "--labels-csv"):
        selection.counts["label_rows"] += 1
        class_id = mapping.get(row["LabelName"])
        if class_id is None:
            continue
        if row.get("Source") == "machine":  # a machine-generated labels file given by mistake
            selection.counts["machine_labels_skipped"] += 1
            continue
        try:
            positive = float(row["Confidence"]) == 1.0
        except ValueError:
            positive = False
        if not positive:
            selection.counts["mapped_labels_not_positive"] += 1
            continue
        image_id = row["ImageID"]
        selection.classes.setdefault(image_id, set()).add(class_id)
        selection.mids.setdefault(image_id, set()).add(row["LabelName"])
    return selection


def read_narratives(paths: tuple[Path, ...], selection: Selection) -> None:
    """Attach Localized Narratives captions to the selected images (in file order)."""
    for path in paths:
        with open_text(path) as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"--narratives {path}, line {number}: not JSON ({exc.msg})") from None
                image_id = str(record.get("image_id", ""))
                if image_id not in selection.classes:
                    selection.counts["narratives_for_other_images"] += 1
                    continue
                caption = clean_html(str(record.get("caption") or ""))
                if caption:
                    selection.narratives.setdefault(image_id, []).append(caption)
                    selection.counts["narratives_attached"] += 1


def _number(value: str, kind: type) -> Any:
    try:
        return kind(value) if value not in ("", None) else None
    except ValueError:
        return None


class _Rows:
    """Turns selected image-list rows into output rows; counts what is left out."""

    def __init__(self, config: OpenImagesConfig, selection: Selection, names: dict[str, str]) -> None:
        self.config, self.selection, self.names = config, selection, names
        self.seen: set[str] = set()
        self.ambiguous: list[str] = []

    def row(self, image: dict[str, str]) -> dict[str, Any] | None:
        image_id = image["ImageID"]
        classes = self.selection.classes.get(image_id)
        if classes is None or image_id in self.seen:
            return None
        self.seen.add(image_id)
        if len(classes) > 1:
            self.selection.counts["ambiguous_images"] += 1
            if len(self.ambiguous) < MAX_EXAMPLES:
                self.ambiguous.append(image_id)
            if not self.config.keep_ambiguous:
                return None
        mids = sorted(self.selection.mids[image_id])
        narratives = self.selection.narratives.get(image_id)
        return {
            schemas.KEY: f"{self.config.key_prefix}-{image_id}",
            schemas.SOURCE: "openimages",
            schemas.LABEL: next(iter(classes)) if len(classes) == 1 else schemas.NO_LABEL,
            schemas.LABELS: sorted(classes),
            schemas.SOURCE_ID: image_id,
            schemas.URL: image.get("OriginalURL") or None,
            schemas.LICENSE: license_name(image.get("License")),
            schemas.OWNER: clean_html(image.get("Author") or "") or None,
            schemas.TITLE: clean_html(image.get("Title") or ""),
            schemas.LABEL_SOURCE: "mapped",
            "label_names": mids,
            "label_display_names": [self.names.get(m, "") for m in mids] if self.names else None,
            schemas.ANNOT_CAPTION: " ".join(narratives) if narratives else None,
            "author_profile_url": image.get("AuthorProfileURL") or None,
            "landing_url": image.get("OriginalLandingURL") or None,
            "thumbnail_url": image.get("Thumbnail300KURL") or None,
            "original_md5": image.get("OriginalMD5") or None,
            "original_size": _number(image.get("OriginalSize", ""), int),
            "rotation": _number(image.get("Rotation", ""), float),
            "subset": image.get("Subset") or None,
        }

    def rows(self) -> Iterator[dict[str, Any]]:
        for image in _csv_rows(self.config.images_csv, IMAGE_COLUMNS, "--images-csv"):
            self.selection.counts["image_rows"] += 1
            row = self.row(image)
            if row is not None:
                yield row


def image_path(image_dir: Path, row: dict[str, Any]) -> Path:
    """Where a local download keeps an image: ``DIR/<ImageID>.jpg`` (Google's downloader),
    ``DIR/<subset>/<ImageID>.jpg`` (the CVDF/AWS bucket layout) or ``DIR/<subset>_<first hex
    digit>/<ImageID>.jpg`` (the extracted ``train_0.tar.gz`` ... ``train_f.tar.gz``)."""
    image_id, subset = row[schemas.SOURCE_ID], row.get("subset") or "train"
    candidates = (image_dir, image_dir / subset, image_dir / f"{subset}_{image_id[:1].lower()}")
    paths = [folder / f"{image_id}.jpg" for folder in candidates]
    return next((p for p in paths if p.is_file()), paths[0])


def _write(stage: StageDir, config: OpenImagesConfig, rows: _Rows, progress: Progress) -> dict[str, Any]:
    fingerprint = inputs_fingerprint(_inputs(config))
    if config.image_dir is None:
        with RowShards(stage, schemas.IMPORT_OPENIMAGES, config.shard_size, fingerprint) as shards:
            for row in rows.rows():
                shards.add(row)
                progress.advance("import openimages")
            return shards.close()
    image_dir = Path(config.image_dir)
    samples = (FileSample(r[schemas.KEY], image_path(image_dir, r), r) for r in rows.rows())
    counts = write_image_shards(
        stage,
        samples,
        shard_size=config.shard_size,
        workers=config.workers,
        index_schema=schemas.IMPORT_OPENIMAGES,
        fingerprint=fingerprint,
        progress=progress,
        task="import openimages",
    )
    return {**counts, **summarise_index(stage)}


def _inputs(config: OpenImagesConfig) -> list[Path | None]:
    return [config.images_csv, config.labels_csv, config.classes_csv, *config.narratives, config.mapping]


def import_openimages(config: OpenImagesConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Import the Open Images images whose human labels map to ``--labels`` classes.

    Returns:
        The summary written to the manifest: images written, per class, ambiguous images,
        labelled images missing from the image list, narratives attached and for other images,
        mapped labels that were not positive.

    Raises:
        InputError: a file is missing or lacks its published columns; a bad mapping.
        OutputError: --out holds something else, or an earlier run with other options.
    """
    from janus_build.labels import load_label_set

    for path in _inputs(config):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{path}: no such file")
    if config.image_dir is not None and not Path(config.image_dir).is_dir():
        raise InputError(f"--image-dir {config.image_dir}: no such directory (expected <ImageID>.jpg files)")
    label_set = load_label_set(config.labels)
    mapping = load_mapping(config.mapping, set(label_set.ids))
    names = load_class_names(Path(config.classes_csv)) if config.classes_csv else {}
    selection = select_images(Path(config.labels_csv), mapping)
    read_narratives(tuple(Path(p) for p in config.narratives), selection)
    rows = _Rows(config, selection, names)
    inputs = describe_inputs(_inputs(config))
    with open_stage(config, "import-openimages", inputs) as stage:
        progress.start("import openimages", total=len(selection.classes), unit="images")
        written = _write(stage, config, rows, progress)
        progress.finish("import openimages")
        counts = selection.counts
        counts["labelled_images"] = len(selection.classes)
        counts["labelled_images_not_in_list"] = len(selection.classes) - len(rows.seen)
        per_class = Counter(c for classes in selection.classes.values() if len(classes) == 1 for c in classes)
        summary = {
            **dict(counts),
            **written,
            "ambiguous_examples": rows.ambiguous,
            "mapped_label_names": len(mapping),
            "labelled_per_class": {str(c): per_class[c] for c in sorted(per_class)},
            "classes_without_images": [c for c in label_set.ids if c not in per_class],
        }
        stage.finish(summary)
    return summary
