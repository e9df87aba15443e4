"""Options of ``janus import`` (frozen configs with their defaults), kept free of heavy imports.

The CLI reads its option defaults from these dataclasses at start-up, so this module must not
import pyarrow or the library; :mod:`janus_build.imports` re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LAYOUTS = ("wnid", "index", "name")
FILE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".webp")  # files considered images (case-insensitive)
DEFAULT_LICENSES = {
    "imagenet": "ImageNet terms of access",
    "openimages": "CC BY 2.0 (per image; see the Open Images image metadata)",
}
UNKNOWN_LICENSE = "unknown"


# --- configs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoldersImportConfig:
    """Options of ``janus import folders`` (the CLI maps onto these one to one).

    Attributes:
        root: the class-folder tree.
        out: the output image stage directory.
        layout: how a folder name gives the class: ``wnid`` (ImageNet train/val, -Sketch, -R, -A),
            ``index`` (the class id, as ImageNet-V2's ``0/`` ... ``999/``) or ``name`` (the
            label set's class name).
        labels: label set (``in100``, ``in1k`` or a TSV file); ``label`` is its class id.
        source: provenance ``source``; None: ``imagenet`` for wnid/index layouts, else ``custom``.
        license: provenance ``license``; None: ``ImageNet terms of access`` for imagenet,
            an Open Images note for openimages, else ``unknown``.
        key_prefix: keys are ``<key_prefix>-<relative path>``; None: the source.
        shard_size: images per output shard.
        workers: threads reading files (I/O bound; helps on network file systems).
        overwrite: replace an existing output instead of resuming it.
    """

    root: Path
    out: Path
    layout: str
    labels: str = "in1k"
    source: str | None = None
    license: str | None = None
    key_prefix: str | None = None
    shard_size: int = 10_000
    workers: int = 8
    overwrite: bool = False


@dataclass(frozen=True)
class Img2datasetImportConfig:
    """Options of ``janus import img2dataset``.

    Attributes:
        input: img2dataset's ``--output_folder`` (``--output_format webdataset``).
        out: the output image stage directory.
        key_col: the column img2dataset saved (``--save_additional_columns``) holding each row's
            key; img2dataset's own ``key`` (its running number) is kept as ``i2d_key``.
        key_prefix: prepended to every key (e.g. ``laion-`` for raw row ids).
        source: provenance ``source``.
        license: provenance ``license``.
        caption_col: the column copied to ``title`` (img2dataset's ``caption``, from its
            ``--caption_col``); missing column: empty titles.
        overwrite: replace an existing output instead of resuming it.
    """

    input: Path
    out: Path
    key_col: str = "janus_key"
    key_prefix: str = ""
    source: str = "laion"
    license: str = UNKNOWN_LICENSE
    caption_col: str = "caption"
    overwrite: bool = False


@dataclass(frozen=True)
class UrlListConfig:
    """Options of ``janus import url-list``.

    Attributes:
        match_dir: a ``janus match`` output directory.
        out: the parquet file to write (img2dataset's ``--url_list``).
        url_col: the URL column; None: ``URL`` or ``url``, whichever exists.
        text_col: the caption column; None: ``TEXT``, ``text`` or ``caption`` if one exists.
        key_col: the name the match ``key`` is written under (``key`` is reserved by img2dataset).
        all_rows: keep unlabelled rows (``label = -1``) too.
    """

    match_dir: Path
    out: Path
    url_col: str | None = None
    text_col: str | None = None
    key_col: str = "janus_key"
    all_rows: bool = False
