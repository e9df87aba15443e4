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
# janus_build.core.shards.IMAGE_INDEX (shard, image_ext, image_offset, image_size, status, error_message).
BALANCE_EXTRA = pa.schema(
    [
        pa.field("source_name", pa.string(), nullable=False),  # the SOURCE's name=... (in100, laion100, ...)
        pa.field("class_name", pa.string()),  # the label's name in the label set
        pa.field("caption_field", pa.string()),  # the column the caption came from; null = no caption
        pa.field("source_key", pa.string()),  # the key in its source (differs from key only on a clash)
        pa.field("owner_name", pa.string()),  # the owner's display name, for attribution (Flickr)
        pa.field("page_url", pa.string()),  # the photo's page, for attribution (Flickr)
        pa.field(LABELS, pa.list_(pa.int32())),  # every class of the label set the sample has (mc), label first
    ]
)

# --- janus fetch: columns added beside FETCH_METADATA (see docs/data-contract.md) -----------
# metadata/NNNNN.parquet carries FETCH_METADATA plus these; images/NNNNN.parquet carries the
# image index (janus_build.core.shards.IMAGE_INDEX) plus the same metadata, with CLASS_IDS instead of
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
TRAIN_LABELS_MEMBER = "labels"  # JSON list of every class of a sample, label first (janus train --multi-label)
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


# --- janus import (janus_build/importers/; docs/import.md) ----------------------------------
# The index of an imported image stage: these columns first, then IMAGE_INDEX's image columns,
# then (img2dataset imports) every column img2dataset wrote, its own `key` kept as `i2d_key`.
IMPORT_FOLDERS_INDEX = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),  # core.keys.path_key(<prefix>, <relative path>)
        pa.field(LABEL, pa.int32(), nullable=False),  # class id in the label set
        pa.field(LABEL_SOURCE, pa.string(), nullable=False),  # ground_truth
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(SOURCE_ID, pa.string(), nullable=False),  # imagenet: path relative to ROOT (POSIX); else the key
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


# --- janus label (janus_build/label/; docs/label.md) -----------------------------------------
# One row per input image: the model's label over the label set (-1 below --threshold or when
# the image could not be decoded), its probability and the top-5; `labels` holds [label] (or [])
# so a label output joins into balance exactly as a match output does.
MODEL_LABELS = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(LABEL, pa.int32(), nullable=False),
        pa.field(LABELS, pa.list_(pa.int32()), nullable=False),
        pa.field("confidence", pa.float32()),
        pa.field("top_labels", pa.list_(pa.int32()), nullable=False),
        pa.field("top_scores", pa.list_(pa.float32()), nullable=False),
        pa.field(LABEL_SOURCE, pa.string(), nullable=False),  # zeroshot:<open_clip model> | classifier:<timm model>
        pa.field("truth", pa.int32()),  # --truth-col's value, when given
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(ERROR_MESSAGE, pa.string()),
    ]
)


# --- janus dedup (janus_build/dedup/; docs/dedup.md) ---------------------------------------
# Hashes are imagehash's 64-bit pHash / dHash, stored as the signed int64 with the same bits
# (DuckDB and Spark read int64; numpy: ``column.view(np.uint64)``).
DEDUP_MATCH = pa.struct(
    [
        pa.field("eval_set", pa.string()),  # the --eval NAME
        pa.field("eval_file", pa.string()),  # path relative to the evaluation folder (POSIX)
        pa.field("eval_variant", pa.string()),  # the view that matched: full, crop90-0-50, flip-full, ...
        pa.field("phash_distance", pa.int32()),
        pa.field("dhash_distance", pa.int32()),
    ]
)
# samples/NNNNN.parquet: one row per training sample checked, one shard per input image shard.
DEDUP_SAMPLES = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),  # the image stage directory (absolute)
        pa.field("shard", pa.string(), nullable=False),  # the input tar's file name
        pa.field(STATUS, pa.string(), nullable=False),  # success | too_plain | decode_error | <input status>
        pa.field(ERROR_MESSAGE, pa.string()),
        pa.field("phash", pa.int64()),
        pa.field("dhash", pa.int64()),
        pa.field("contaminated", pa.bool_(), nullable=False),
        pa.field("matches", pa.list_(DEDUP_MATCH), nullable=False),
    ]
)
# contaminated.parquet: one row per (training sample, evaluation image) near-duplicate pair.
DEDUP_MATCHES = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("eval_set", pa.string(), nullable=False),
        pa.field("eval_file", pa.string(), nullable=False),
        pa.field("eval_variant", pa.string(), nullable=False),  # the hash view, or "clip" for an embedding-only pair
        pa.field("phash_distance", pa.int32()),  # null: found by the embedding pass only
        pa.field("dhash_distance", pa.int32()),
        pa.field("clip_similarity", pa.float32()),  # null: the embedding pass was off (or did not pair them)
    ]
)
# clip/NNNNN.parquet: the embedding pass's pairs of one input shard (cosine >= --min-clip-similarity).
DEDUP_CLIP_PAIRS = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("eval_set", pa.string(), nullable=False),
        pa.field("eval_file", pa.string(), nullable=False),
        pa.field("clip_similarity", pa.float32(), nullable=False),
    ]
)
# exclude_keys.parquet: the keys to leave out of a dataset (janus balance), with the sets they leak.
DEDUP_EXCLUDE = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field("eval_sets", pa.list_(pa.string()), nullable=False),
    ]
)
# _eval/NNNNN.parquet: the cached hashes of one evaluation set (one row per indexed view).
DEDUP_EVAL_HASHES = pa.schema(
    [
        pa.field("eval_file", pa.string(), nullable=False),
        pa.field("view", pa.int16()),  # index into janus_build.dedup.hashing.view_names; null when failed
        pa.field("phash", pa.int64()),
        pa.field("dhash", pa.int64()),
        pa.field(STATUS, pa.string(), nullable=False),  # success | too_plain | decode_error
        pa.field(ERROR_MESSAGE, pa.string()),
    ]
)
CONTAMINATION_SUMMARY = "_contamination.json"
CONTAMINATION_FORMAT = "janus-contamination/1"
# --- janus import: the paper's public sources (issue 13; docs/import.md) ---------------------
# Provenance first, then each source's text fields kept apart (title, tags, description, human
# captions), so `janus match --text-col title --text-col tags ...` reads them field by field.
_IMPORT_PROVENANCE = [
    pa.field(KEY, pa.string(), nullable=False),
    pa.field(SOURCE, pa.string(), nullable=False),
    pa.field(SOURCE_ID, pa.string(), nullable=False),
    pa.field(URL, pa.string()),
    pa.field(LICENSE, pa.string()),
    pa.field(OWNER, pa.string()),
    pa.field(TITLE, pa.string()),
    pa.field(LABEL_SOURCE, pa.string()),  # null until a stage labels the row (match, a mapping)
]
ANNOT_CAPTION = "annot_caption"  # a human caption (Localized Narratives); janus caption prefers it
# janus import yfcc: metadata shards (<prefix>-<photo id>), decoded text
IMPORT_YFCC = pa.schema(
    [
        *_IMPORT_PROVENANCE,
        pa.field("description", pa.string()),  # URL-decoded, HTML entities resolved, tags removed
        pa.field("tags", pa.string()),  # user tags, decoded, joined with ', '
        pa.field("machine_tags", pa.string()),
        pa.field("owner_name", pa.string()),  # the user's nickname (attribution)
        pa.field("license_name", pa.string()),  # the licence name as YFCC prints it
        pa.field("license_url", pa.string()),
        pa.field("page_url", pa.string()),
        pa.field("date_taken", pa.string()),  # 'YYYY-MM-DD HH:MM:SS'; null for null/implausible dates
        pa.field("date_uploaded", pa.int64()),  # unix seconds
        pa.field("capture_device", pa.string()),
        pa.field("longitude", pa.float64()),
        pa.field("latitude", pa.float64()),
        pa.field("accuracy", pa.int32()),
        pa.field("extension", pa.string()),
        pa.field("line_number", pa.int64()),  # Multimedia Commons layout only
        pa.field("photo_hash", pa.string()),  # Multimedia Commons layout only
        pa.field("title_clean", pa.string()),  # parquet re-releases only, as they are
        pa.field("description_clean", pa.string()),
    ]
)
# janus import laion: these columns first, then every LAION column under its own name
IMPORT_LAION = pa.schema(_IMPORT_PROVENANCE)
# janus import imagenet-captions: an image stage (with IMAGE_INDEX's columns after these)
IMPORT_IMAGENET_CAPTIONS_INDEX = pa.schema(
    [
        *_IMPORT_PROVENANCE[:2],
        pa.field(LABEL, pa.int32(), nullable=False),  # the wnid's class id in the label set
        *_IMPORT_PROVENANCE[2:],
        pa.field("wnid", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("tags", pa.string()),  # the JSON list joined with ', '
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
    ]
)
# janus import openimages: a metadata stage, or an image stage with --image-dir
IMPORT_OPENIMAGES = pa.schema(
    [
        *_IMPORT_PROVENANCE[:2],
        pa.field(LABEL, pa.int32(), nullable=False),  # mapped class id; -1 when ambiguous (kept on request)
        pa.field(LABELS, pa.list_(pa.int32()), nullable=False),  # every mapped class, ascending
        *_IMPORT_PROVENANCE[2:],
        pa.field("label_names", pa.list_(pa.string())),  # OpenImages LabelNames (MIDs) that mapped
        pa.field("label_display_names", pa.list_(pa.string())),  # with --classes-csv
        pa.field(ANNOT_CAPTION, pa.string()),  # Localized Narratives caption(s), joined with ' '
        pa.field("author_profile_url", pa.string()),
        pa.field("landing_url", pa.string()),  # OriginalLandingURL (the Flickr page)
        pa.field("thumbnail_url", pa.string()),  # Thumbnail300KURL
        pa.field("original_md5", pa.string()),
        pa.field("original_size", pa.int64()),
        pa.field("rotation", pa.float64()),
        pa.field("subset", pa.string()),
        pa.field("width", pa.int32()),  # image stage only
        pa.field("height", pa.int32()),
    ]
)
