"""``janus import yfcc``: YFCC100M / YFCC15M metadata, as distributed -> a metadata stage.

Three published layouts, told apart per file:

* Yahoo Webscope's ``yfcc100m_dataset-N`` parts: 23 tab-separated fields, no header;
* Multimedia Commons / AWS ``yfcc100m_dataset``: 25 fields (line number, photo id, photo hash,
  then the Webscope fields after the photo id);
* parquet re-releases of the 15M subset (the 23 fields as ``photoid``, ``uid``, ``usertags``,
  ... plus ``key``, sometimes ``title_clean``/``description_clean``, kept as they are).

Text fields are URL-encoded (``+`` for space, ``%XX``, newlines as ``%0A``) and may hold HTML
entities and tags: ``title``, ``description``, ``tags`` and ``machine_tags`` are decoded;
videos (marker 1) are dropped; ``license`` is the project's licence name (``CC BY-NC-SA 2.0``),
the raw name kept as ``license_name``. Plain, ``.bz2`` and ``.gz`` files are streamed, and
OpenAI's ``yfcc100m_subset_data.tsv`` restricts the rows to the CLIP 15M subset.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from janus_build import schemas
from janus_build.errors import InputError
from janus_build.importers.common import (
    MAX_EXAMPLES,
    RowShards,
    clean_html,
    describe_inputs,
    inputs_fingerprint,
    license_name,
    open_stage,
    open_text,
)
from janus_build.importers.config import YfccConfig
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

#: Webscope's 23 fields, in file order, under the names janus writes
FIELDS = (
    "photo_id",
    "owner",  # user NSID
    "owner_name",  # user nickname
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "tags",  # user tags, comma-separated
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "page_url",
    "url",  # the photo's download URL
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension",
    "marker",  # 0 photo, 1 video
)
#: the parquet re-releases' column names (dalle-mini style) -> janus's
PARQUET_NAMES = {
    "photoid": "photo_id",
    "uid": "owner",
    "unickname": "owner_name",
    "datetaken": "date_taken",
    "dateuploaded": "date_uploaded",
    "capturedevice": "capture_device",
    "usertags": "tags",
    "machinetags": "machine_tags",
    "pageurl": "page_url",
    "downloadurl": "url",
    "licensename": "license_name",
    "licenseurl": "license_url",
    "serverid": "server_id",
    "farmid": "farm_id",
    "secretoriginal": "secret_original",
    "ext": "extension",
    **{name: name for name in FIELDS},
}
_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d:\d\d:\d\d))?")
FIRST_YEAR, LAST_YEAR = 1826, 2100  # a date outside (Flickr's year 4501, 0000) is no date


def decode_text(value: str | None, *, strip_html: bool = False) -> str:
    """YFCC free text as people wrote it: URL-decoded (``+`` is a space), HTML entities resolved."""
    if not value:
        return ""
    text = value.replace("+", " ")
    if "%" in text:
        text = unquote(text)
    return clean_html(text, strip_tags=strip_html)


def decode_tags(value: str | None) -> str:
    """Comma-separated, individually URL-encoded tags -> ``tag one, tag two``."""
    if not value:
        return ""
    return ", ".join(t for t in (decode_text(p) for p in value.split(",")) if t)


def parse_date(value: str | None) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` of a plausible date taken, else None (``null``, year 4501, junk)."""
    found = _DATE.match((value or "").strip())
    if not found or not FIRST_YEAR <= int(found.group(1)) <= LAST_YEAR:
        return None
    date = "-".join(found.group(1, 2, 3))
    return f"{date} {found.group(4)}" if found.group(4) else date


def _number(value: Any, kind: type) -> Any:
    if value is None or value == "":
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=256)
def _licence(raw: str | None, url: str | None) -> tuple[str | None, str | None]:
    """(project licence name, decoded YFCC name) of a licence; a dozen distinct values in YFCC."""
    name = decode_text(raw)
    return license_name(name, url), name or None


def make_row(raw: Mapping[str, Any], prefix: str, counts: Counter) -> dict[str, Any] | None:
    """One output row from the raw fields of one photo; None for a video (counted)."""
    if str(raw.get("marker") or "0").strip() == "1":
        counts["videos_dropped"] += 1
        return None
    photo_id = str(raw["photo_id"]).strip()
    date_taken = parse_date(None if raw.get("date_taken") is None else str(raw["date_taken"]))
    if date_taken is None:
        counts["dates_taken_unusable"] += 1
    licence, licence_name = _licence(raw.get("license_name"), raw.get("license_url"))
    return {
        schemas.KEY: f"{prefix}-{photo_id}",
        schemas.SOURCE: "yfcc",
        schemas.SOURCE_ID: photo_id,
        schemas.URL: raw.get("url") or None,
        schemas.LICENSE: licence,
        schemas.OWNER: raw.get("owner") or None,
        schemas.TITLE: decode_text(raw.get("title")),
        schemas.LABEL_SOURCE: None,
        "description": decode_text(raw.get("description"), strip_html=True),
        "tags": decode_tags(raw.get("tags")),
        "machine_tags": decode_tags(raw.get("machine_tags")),
        "owner_name": decode_text(raw.get("owner_name")),
        "license_name": licence_name,
        "license_url": raw.get("license_url") or None,
        "page_url": raw.get("page_url") or None,
        "date_taken": date_taken,
        "date_uploaded": _number(raw.get("date_uploaded"), int),
        "capture_device": decode_text(raw.get("capture_device")) or None,
        "longitude": _number(raw.get("longitude"), float),
        "latitude": _number(raw.get("latitude"), float),
        "accuracy": _number(raw.get("accuracy"), int),
        "extension": raw.get("extension") or None,
        "line_number": _number(raw.get("line_number"), int),
        "photo_hash": raw.get("photo_hash") or None,
        "title_clean": raw.get("title_clean"),
        "description_clean": raw.get("description_clean"),
    }


# --- readers --------------------------------------------------------------------------------
def _tsv_fields(parts: list[str]) -> dict[str, str] | None:
    if len(parts) == len(FIELDS):
        return dict(zip(FIELDS, parts))
    if len(parts) == len(FIELDS) + 2:  # Multimedia Commons: line number, photo id, photo hash, ...
        fields = dict(zip(FIELDS[1:], parts[3:]))
        fields.update(line_number=parts[0], photo_id=parts[1], photo_hash=parts[2])
        return fields
    return None


MAX_CONTINUATION_LINES = 100  # a record broken by raw newlines spans at most this many lines
_RECORD_WIDTHS = (len(FIELDS), len(FIELDS) + 2)


def tsv_records(handle: Any) -> Iterator[tuple[int, str, list[str] | None]]:
    """``(first line number, text, fields or None)`` per record of a YFCC TSV. A record cut by
    raw newlines (a description re-exported decoded) is joined back while it has too few
    fields; a short line that joins into nothing valid is yielded as malformed (None) and the
    line after it is read on its own, so one bad line never costs its neighbour."""
    pending, start = None, 0
    for number, raw in enumerate(handle, 1):
        line = raw.rstrip("\r\n")
        if pending is not None:
            joined = f"{pending}\n{line}"
            width = joined.count("\t") + 1
            if width in _RECORD_WIDTHS:
                yield start, joined, joined.split("\t")
                pending = None
                continue
            if width < len(FIELDS) and number - start < MAX_CONTINUATION_LINES:
                pending = joined
                continue
            yield start, pending, None
            pending = None
        width = line.count("\t") + 1
        if width in _RECORD_WIDTHS:
            yield number, line, line.split("\t")
        elif line and width < len(FIELDS):
            pending, start = line, number
        elif line:
            yield number, line, None
    if pending is not None:
        yield start, pending, None


def read_tsv(path: Path, counts: Counter, bad: list[str]) -> Iterator[dict[str, str]]:
    """The raw fields of each record of a Webscope (23 fields) or Multimedia Commons (25) file."""
    with open_text(path) as handle:
        for number, text, parts in tsv_records(handle):
            fields = _tsv_fields(parts) if parts is not None else None
            if fields is None or not fields["photo_id"].isdigit():
                counts["malformed_lines"] += 1
                if len(bad) < MAX_EXAMPLES:
                    bad.append(f"{path.name}:{number} ({text.count(chr(9)) + 1} fields)")
                continue
            if "\n" in text:
                counts["records_over_several_lines"] += 1
            yield fields


def read_parquet(path: Path) -> Iterator[dict[str, Any]]:
    """The raw fields of each row of a parquet re-release (every value as a string)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None
    names = handle.schema_arrow.names
    # only the metadata: a re-release may carry the image bytes too (dalle-mini's `img`)
    renames = {n: PARQUET_NAMES[n.lower()] for n in names if n.lower() in PARQUET_NAMES}
    renames.update({n: n for n in names if n in ("title_clean", "description_clean")})
    if "photo_id" not in renames.values():
        raise InputError(f"{path}: no photo id column (photoid or photo_id); columns present: {', '.join(names)}")
    for batch in handle.iter_batches(batch_size=8192, columns=list(renames)):
        columns = {renames[n]: batch.column(n).cast(pa.string()).to_pylist() for n in batch.schema.names}
        for values in zip(*columns.values()):
            yield dict(zip(columns, values))


def read_subset(path: Path) -> Any:
    """The photo ids of OpenAI's ``yfcc100m_subset_data.tsv`` (line number, photo id, photo
    hash) as a sorted numpy array (8 bytes per photo: 120 MB for the 15M subset)."""
    import numpy as np

    ids: list[int] = []
    with open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) >= 2 and parts[1].strip().isdigit():
                ids.append(int(parts[1]))
            elif number > 1 and line.strip():  # a header line is allowed
                raise InputError(f"--subset {path}, line {number}: expected line number, photo id, photo hash")
    if not ids:
        raise InputError(f"--subset {path}: no photo ids")
    return np.unique(np.asarray(ids, dtype=np.int64))


def _in_subset(subset: Any, photo_id: str) -> bool:
    import numpy as np

    value = int(photo_id)
    at = int(np.searchsorted(subset, value))
    return at < len(subset) and int(subset[at]) == value


def _raw_rows(path: Path, counts: Counter, bad: list[str]) -> Iterator[Mapping[str, Any]]:
    if path.name.lower().endswith(".parquet"):
        return read_parquet(path)
    return read_tsv(path, counts, bad)


# --- the stage ------------------------------------------------------------------------------
def import_yfcc(config: YfccConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Import YFCC metadata files into ``NNNNN.parquet`` shards of ``schemas.IMPORT_YFCC``.

    Returns:
        The summary written to the manifest: rows read, written, videos dropped, rows outside the
        subset, malformed lines (with examples), unusable dates taken, licences.

    Raises:
        InputError: a file is missing or unreadable, or the subset list is malformed.
        OutputError: --out holds something else, or an earlier run with other options.
    """
    files = [Path(p) for p in config.inputs]
    for path in files:
        if not path.is_file():
            raise InputError(f"INPUT {path}: no such file")
    subset = read_subset(Path(config.subset)) if config.subset else None
    every = [*files, config.subset]
    counts: Counter = Counter()
    licences: Counter = Counter()
    bad: list[str] = []
    with open_stage(config, "import-yfcc", describe_inputs(every)) as stage:
        progress.start("import yfcc", total=None, unit="rows")
        with RowShards(stage, schemas.IMPORT_YFCC, config.shard_size, inputs_fingerprint(every)) as shards:
            for path in files:
                for raw in _raw_rows(path, counts, bad):
                    counts["rows_read"] += 1
                    if subset is not None and not _in_subset(subset, str(raw["photo_id"])):
                        counts["not_in_subset"] += 1
                        continue
                    row = make_row(raw, config.key_prefix, counts)
                    if row is not None:
                        licences[row[schemas.LICENSE] or "(none)"] += 1
                        shards.add(row)
                    progress.advance("import yfcc")
            written = shards.close()
        progress.finish("import yfcc")
        if counts["malformed_lines"]:
            log.warning("%d malformed line(s) skipped, e.g. %s", counts["malformed_lines"], ", ".join(bad[:3]))
        summary = {**dict(counts), **written, "malformed_examples": bad, "licenses": dict(licences.most_common())}
        stage.finish(summary)
    return summary
