"""The data contract: column names and pyarrow schemas of every stage's output.

Every writer validates its tables here before they reach disk (:func:`validate`), and every
reader checks the columns it needs (:func:`require_columns`). Extra columns are allowed and
carried along: a stage adds to what it reads, it never renames. See docs/data-contract.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from janus_build.errors import SchemaError

# --- column names shared by all stages -----------------------------------------------------
KEY = "key"  # stable sample id, also the webdataset __key__ (e.g. flickr-<photo_id>)
LABEL = "label"  # int32 class id (ImageNet-1k index for the ImageNet label sets), -1 = none
LABELS = "labels"  # list<int32>: every distinct class matched, in caption order
MATCHED_TERMS = "matched_terms"  # list<string>: the matching terms found, in caption order
STATUS = "status"  # "success" or a failure kind, per sample
ERROR_MESSAGE = "error_message"

# Provenance: travels with every sample to the final shards (CC licences need attribution).
SOURCE = "source"  # flickr, imagenet, openimages, laion, yfcc, ...
SOURCE_ID = "source_id"  # the id within the source (Flickr photo id, LAION row, ...)
URL = "url"
LICENSE = "license"  # licence name or URL; Flickr licence ids are resolved to names
OWNER = "owner"
TITLE = "title"
LABEL_SOURCE = "label_source"  # ground_truth, human, tagged, sc, strict, mc, mapped, ...
PROVENANCE_COLUMNS = (SOURCE, SOURCE_ID, URL, LICENSE, OWNER, TITLE, LABEL_SOURCE)

NO_LABEL = -1
MAX_LABELS = 25

LABEL_SOURCES = ("ground_truth", "human", "tagged", "sc", "strict", "mc", "mapped")
SOURCES = ("flickr", "imagenet", "openimages", "laion", "yfcc", "custom")

# --- janus match ---------------------------------------------------------------------------
MATCH_ADDED = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(LABEL, pa.int32(), nullable=False),
        pa.field(LABELS, pa.list_(pa.int32()), nullable=False),
        pa.field(MATCHED_TERMS, pa.list_(pa.string()), nullable=False),
    ]
)

# --- janus fetch ---------------------------------------------------------------------------
FETCH_METADATA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),  # flickr-<photo_id>
        pa.field("photo_id", pa.string(), nullable=False),
        pa.field("class_id", pa.int32(), nullable=False),
        pa.field("query", pa.string()),
        pa.field(TITLE, pa.string()),
        pa.field("description", pa.string()),
        pa.field("tags", pa.string()),
        pa.field(OWNER, pa.string()),
        pa.field(LICENSE, pa.string()),
        pa.field(URL, pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("date_upload", pa.int64()),
    ]
)

# --- janus tag export ----------------------------------------------------------------------
TAG_DECISIONS = ("in", "out", "unsure")
TAGS = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field("class_id", pa.int32(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),  # in | out | unsure
        pa.field("annotator", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)

# --- janus caption -------------------------------------------------------------------------
CAPTIONS = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field("caption_blip", pa.string()),
        pa.field("caption_blip_spellchecked", pa.string()),
        pa.field("caption_blip_title", pa.string()),
        pa.field("prose_caption", pa.string()),
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(ERROR_MESSAGE, pa.string()),
    ]
)

# --- janus balance (the index beside each webdataset shard) ---------------------------------
BALANCE_INDEX = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(LABEL, pa.int32(), nullable=False),
        pa.field("caption", pa.string()),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(SOURCE_ID, pa.string()),
        pa.field(URL, pa.string()),
        pa.field(LICENSE, pa.string()),
        pa.field(OWNER, pa.string()),
        pa.field(TITLE, pa.string()),
        pa.field(LABEL_SOURCE, pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # train | val
    ]
)


def require_columns(columns: Iterable[str], required: Iterable[str], where: str) -> None:
    """Raise :class:`SchemaError` naming ``where`` and the missing and present columns."""
    present = list(columns)
    missing = [c for c in required if c not in present]
    if missing:
        raise SchemaError(
            f"{where}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"columns present: {', '.join(present) or '(none)'}"
        )


def validate(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Check ``table`` carries every field of ``schema`` with its type; return it cast in order.

    Extra columns are kept after the contract's columns. Non-nullable fields must hold no nulls.
    """
    require_columns(table.column_names, schema.names, where)
    columns, fields = [], []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"{where}: column {field.name!r} has type {column.type}, expected {field.type} ({exc})"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaError(f"{where}: column {field.name!r} has {column.null_count} null value(s); none allowed")
        columns.append(column)
        fields.append(field)
    for name in table.column_names:
        if name not in schema.names:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


# --- janus balance: columns written after BALANCE_INDEX (issue 6) -------------------------------
# Order of a balance shard's index: BALANCE_INDEX, then BALANCE_EXTRA, then the image columns of
# janus_build.images.IMAGE_INDEX (shard, image_ext, image_offset, image_size, status, error_message).
BALANCE_EXTRA = pa.schema(
    [
        pa.field("source_name", pa.string(), nullable=False),  # the SOURCE's name=... (in100, laion100, ...)
        pa.field("class_name", pa.string()),  # the label's name in the label set
        pa.field("caption_field", pa.string()),  # the column the caption came from; null = no caption
    ]
)

# --- janus fetch: columns added beside FETCH_METADATA (see docs/data-contract.md) -----------
# metadata/NNNNN.parquet carries FETCH_METADATA plus these; images/NNNNN.parquet carries the
# image index (janus_build.images.IMAGE_INDEX) plus the same metadata, with CLASS_IDS instead of
# ALSO_IN_CLASSES/rank/query_index (an image is stored once even when several classes kept it).
FETCH_EXTRA_COLUMNS = (
    "owner_name",  # the owner's display name (attribution); `owner` is the Flickr NSID
    "license_id",  # Flickr licence id (int32); `license` is its name, `license_url` its deed
    "license_url",
    "page_url",  # https://www.flickr.com/photos/<owner>/<photo_id>
    "class_name",
    "query_index",  # which of the class's queries found it first (int32)
    "rank",  # position in the class's kept list, in search order (int32)
    SOURCE,  # "flickr"
    SOURCE_ID,  # the photo id
    "also_in_classes",  # list<int32>: other classes that kept the same photo
    "description_html",  # the description as Flickr sent it; `description` is its text (markup removed)
)
CLASS_IDS = "class_ids"  # list<int32> in the image index: every class that kept the photo
DROPPED_BY = "dropped_by"  # dropped/NNNNN.parquet: the local query rule, e.g. exclude:jet, require:lion


# --- janus train / janus eval (docs/data-contract.md) --------------------------------------
# Webdataset members janus train reads from balance shards: an image, the label (ASCII int), the caption.
TRAIN_IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp")
TRAIN_LABEL_MEMBER = "cls"
TRAIN_CAPTION_MEMBER = "txt"
# Evaluation sets, as keys of the metrics JSON's "shifts"; the last four make average robustness.
EVAL_SHIFTS = ("imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")
ROBUSTNESS_SHIFTS = ("imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")
EVAL_METRICS_KEYS = (
    "format",
    "shifts",
    "val_top1",
    "average_robustness",
    "average_robustness_shifts",
    "average_robustness_complete",
    "effective_robustness_ratio",
)
EVAL_SHIFT_KEYS = ("top1", "correct", "images", "classes", "classes_present", "path")


# --- janus import (janus_build/imports.py; docs/import.md) ----------------------------------
# The index of an imported image stage: these columns first, then IMAGE_INDEX's image columns,
# then (img2dataset imports) every column img2dataset wrote, its own `key` kept as `i2d_key`.
IMPORT_FOLDERS_INDEX = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),  # <prefix>-<relative path, '/' -> '-'>
        pa.field(LABEL, pa.int32(), nullable=False),  # class id in the label set
        pa.field(LABEL_SOURCE, pa.string(), nullable=False),  # ground_truth
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(SOURCE_ID, pa.string(), nullable=False),  # path relative to ROOT (POSIX)
        pa.field(URL, pa.string()),  # null
        pa.field(LICENSE, pa.string()),
        pa.field(OWNER, pa.string()),  # null
        pa.field(TITLE, pa.string()),  # ''
        pa.field("width", pa.int32()),  # from the image header; null when not an image
        pa.field("height", pa.int32()),
    ]
)
IMPORT_IMG2DATASET_INDEX = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),  # --key-prefix + the --key-col value
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(SOURCE_ID, pa.string(), nullable=False),  # the --key-col value
        pa.field(URL, pa.string()),
        pa.field(LICENSE, pa.string()),
        pa.field(TITLE, pa.string()),  # img2dataset's caption, '' when none
        pa.field("i2d_key", pa.string()),  # img2dataset's own running key
    ]
)
