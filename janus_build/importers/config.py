"""Options of ``janus import`` (frozen configs with their defaults), kept free of heavy imports.

The CLI reads its option defaults from these dataclasses at start-up, so this module imports
neither pyarrow nor the rest of the package. Validation that needs no file lives in
``__post_init__``; each config names its ``VOLATILE`` fields (those a resumed run may change).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from janus_build.errors import ConfigError

LAYOUTS = ("wnid", "index", "name")
FILE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".webp")  # files considered images (case-insensitive)
SOURCES = ("flickr", "imagenet", "openimages", "laion", "yfcc", "custom")  # = schemas.SOURCES
DEFAULT_LICENSES = {
    "imagenet": "ImageNet terms of access",
    "openimages": "CC BY 2.0 (per image; see the Open Images image metadata)",
}
UNKNOWN_LICENSE = "unknown"
VOLATILE = ("workers", "overwrite", "out")  # never change what an import writes
SHARD_SIZE = 100_000  # rows per metadata shard (imagenet-captions, openimages, yfcc)


def _check_shard_size(value: int) -> None:
    if value < 1:
        raise ConfigError(f"--shard-size: must be at least 1, got {value}")


def _check_source(value: str | None) -> None:
    if value is not None and value not in SOURCES:
        raise ConfigError(f"--source: {value!r} is not one of {', '.join(SOURCES)}")


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
        key_prefix: keys are ``path_key(<key_prefix>, <relative path>)``; None: the source.
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

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"--layout: {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        _check_shard_size(self.shard_size)
        _check_source(self.source)


@dataclass(frozen=True)
class Img2datasetImportConfig:
    """Options of ``janus import img2dataset``.

    Attributes:
        input: img2dataset's ``--output_folder`` (``--output_format webdataset``).
        out: the output image stage directory.
        key_col: the column img2dataset saved (``--save_additional_columns``) holding each row's
            key; img2dataset's own ``key`` (its running number) is kept as ``i2d_key``.
        key_prefix: prepended to every key (e.g. ``laion-`` for raw row ids).
        source: provenance ``source`` when the row carries none.
        license: provenance ``license`` for rows whose own ``license``/``LICENSE`` is empty.
        caption_col: the column copied to ``title`` when the row has no ``title`` (img2dataset's
            ``caption``, from its ``--caption_col``); missing column: empty titles.
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

    def __post_init__(self) -> None:
        _check_source(self.source)


@dataclass(frozen=True)
class UrlListConfig:
    """Options of ``janus import url-list``.

    Attributes:
        stage_dir: a ``janus match`` output, or a metadata import (openimages, yfcc, laion).
        out: the parquet file to write (img2dataset's ``--url_list``).
        url_col: the URL column; None: ``URL`` or ``url``, whichever exists.
        text_col: the caption column; None: ``TEXT``, ``text``, ``caption`` or ``title`` if one exists.
        key_col: the name the stage ``key`` is written under (``key`` is reserved by img2dataset).
        all_rows: keep unlabelled rows (``label = -1``) too.
    """

    stage_dir: Path
    out: Path
    url_col: str | None = None
    text_col: str | None = None
    key_col: str = "janus_key"
    all_rows: bool = False

    def __post_init__(self) -> None:
        if self.key_col == "key":
            raise ConfigError("--key-col: img2dataset reserves 'key' for its own numbering; choose another name")


@dataclass(frozen=True)
class ImagenetCaptionsConfig:
    """Options of ``janus import imagenet-captions``.

    Attributes:
        captions: ImageNet-Captions' ``imagenet_captions.json`` (or the ``.zip``/``.gz``/``.bz2``
            holding it): a JSON list of ``{filename, wnid, title, description, tags}``.
        root: an ImageNet train folder (``ROOT/<wnid>/<filename>``).
        out: the output image stage directory.
        labels: label set (``in100``, ``in1k`` or a TSV file with a ``wnid`` column); captions of
            other classes are skipped and counted.
        key_prefix: keys are ``path_key(<key_prefix>, <wnid>/<filename>)``, the same keys as
            ``janus import folders --layout wnid`` gives the same files.
        license: provenance ``license``.
        shard_size: images per output shard.
        workers: threads reading files.
        overwrite: replace an existing output instead of resuming it.
    """

    captions: Path
    root: Path
    out: Path
    labels: str = "in100"
    key_prefix: str = "imagenet"
    license: str = DEFAULT_LICENSES["imagenet"]
    shard_size: int = 10_000
    workers: int = 8
    overwrite: bool = False

    def __post_init__(self) -> None:
        _check_shard_size(self.shard_size)


@dataclass(frozen=True)
class OpenImagesConfig:
    """Options of ``janus import openimages``.

    Attributes:
        images_csv: the image list (``oidv6-train-images-with-labels-with-rotation.csv``,
            ``train-images-boxable-with-rotation.csv``, ...).
        labels_csv: human image-level labels (``oidv7-train-annotations-human-imagelabels.csv``);
            only ``Confidence`` 1 counts.
        out: the output stage directory.
        classes_csv: class descriptions (``oidv7-class-descriptions.csv`` or the header-less
            ``class-descriptions.csv``): adds ``label_names``.
        narratives: Localized Narratives JSONL files (``open_images_train_v6_captions.jsonl``).
        mapping: OpenImages ``LabelName`` -> class id TSV; None: the shipped IN100 mapping.
        labels: label set the mapped class ids must belong to.
        image_dir: a local download holding ``<ImageID>.jpg`` (an image stage is written);
            None: a metadata stage for ``janus import url-list`` + img2dataset.
        key_prefix: keys are ``<key_prefix>-<ImageID>``.
        keep_ambiguous: keep images whose labels map to several classes (``label`` -1).
        shard_size: rows per output shard.
        workers: threads reading image files.
        overwrite: replace an existing output instead of resuming it.
    """

    images_csv: Path
    labels_csv: Path
    out: Path
    classes_csv: Path | None = None
    narratives: tuple[Path, ...] = ()
    mapping: Path | None = None
    labels: str = "in100"
    image_dir: Path | None = None
    key_prefix: str = "openimages"
    keep_ambiguous: bool = False
    shard_size: int = 10_000
    workers: int = 8
    overwrite: bool = False

    def __post_init__(self) -> None:
        _check_shard_size(self.shard_size)
        object.__setattr__(self, "narratives", tuple(self.narratives))


@dataclass(frozen=True)
class YfccConfig:
    """Options of ``janus import yfcc``.

    Attributes:
        inputs: YFCC100M metadata as distributed: Webscope's 23-field TSV parts, the Multimedia
            Commons ``yfcc100m_dataset`` (25 fields), either plain, ``.bz2`` or ``.gz``; or the
            parquet re-releases of the 15M subset.
        out: the output metadata stage directory.
        subset: OpenAI's ``yfcc100m_subset_data.tsv[.bz2]`` (line number, photo id, photo hash):
            keep only the photos it lists.
        keep_videos: keep rows whose marker is 1 (videos); dropped by default.
        key_prefix: keys are ``<key_prefix>-<photo id>``.
        shard_size: rows per output shard.
        overwrite: replace an existing output instead of resuming it.
    """

    inputs: tuple[Path, ...]
    out: Path
    subset: Path | None = None
    keep_videos: bool = False
    key_prefix: str = "yfcc"
    shard_size: int = SHARD_SIZE
    overwrite: bool = False

    def __post_init__(self) -> None:
        _check_shard_size(self.shard_size)
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.inputs:
            raise ConfigError("INPUT: give at least one YFCC metadata file")


@dataclass(frozen=True)
class LaionConfig:
    """Options of ``janus import laion``.

    Attributes:
        inputs: LAION parquet files, directories or globs as distributed (400M or 2B columns).
        out: the output metadata stage directory (one shard per input file).
        license: provenance ``license`` for rows whose ``LICENSE`` is empty or ``?``.
        key_prefix: keys are ``<key_prefix>-<SAMPLE_ID or hash>``; give LAION releases different
            prefixes when importing them into one run of ``janus balance``.
        overwrite: replace an existing output instead of resuming it.
    """

    inputs: tuple[str, ...]
    out: Path
    license: str = UNKNOWN_LICENSE
    key_prefix: str = "laion"
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        if not self.inputs:
            raise ConfigError("INPUT: give at least one LAION parquet file, directory or glob")
