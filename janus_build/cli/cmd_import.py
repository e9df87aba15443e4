"""``janus import``: class folders, img2dataset downloads and the paper's public sources -> stages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app
from janus_build.importers.config import (
    FoldersImportConfig,
    ImagenetCaptionsConfig,
    Img2datasetImportConfig,
    LaionConfig,
    OpenImagesConfig,
    UrlListConfig,
    YfccConfig,
)

import_app = typer.Typer(
    help="Bring existing image collections into the image-stage format (read by balance, tag, caption).",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

_F = FoldersImportConfig.__dataclass_fields__  # the defaults live in the config dataclasses only
_I = Img2datasetImportConfig.__dataclass_fields__
_U = UrlListConfig.__dataclass_fields__
_C = ImagenetCaptionsConfig.__dataclass_fields__
_O = OpenImagesConfig.__dataclass_fields__
_Y = YfccConfig.__dataclass_fields__
_L = LaionConfig.__dataclass_fields__
_OVERWRITE = "Replace an existing output instead of resuming it."


def _counts(summary: dict, *names: str) -> str:
    return ", ".join(f"{n.replace('_', ' ')} {summary[n]:,}" for n in names if summary.get(n))


@import_app.command("folders")
def folders(
    root: Path = typer.Argument(
        ..., metavar="ROOT", help="Class-folder tree: ROOT/<class folder>/<images> (sub-folders are read too)."
    ),
    out: Path = typer.Option(..., "--out", help="Output image stage directory."),
    layout: str = typer.Option(
        ...,
        "--layout",
        help="wnid (ROOT/n01440764/: ImageNet train/val, -Sketch, -R, -A) | index (ROOT/291/: ImageNet-V2) | name (ROOT/<class name>/).",
    ),
    labels: str = typer.Option(
        _F["labels"].default,
        "--labels",
        help="Label set: in100 | in1k | FILE (TSV class_id, name[, wnid]). Folders of other classes are skipped.",
    ),
    source: Optional[str] = typer.Option(
        None,
        "--source",
        help="Provenance source: imagenet | openimages | custom | ... (default: imagenet for wnid/index, custom for name).",
    ),
    license: Optional[str] = typer.Option(
        None,
        "--license",
        help="Licence text for every image (default: 'ImageNet terms of access' for imagenet, 'unknown' for custom).",
    ),
    key_prefix: Optional[str] = typer.Option(
        None,
        "--key-prefix",
        help="Keys are path_key(<prefix>, <relative path>) (docs/import.md); default: the source.",
    ),
    shard_size: int = typer.Option(_F["shard_size"].default, "--shard-size", help="Images per output shard."),
    workers: int = typer.Option(_F["workers"].default, "--workers", help="Threads reading files."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output instead of resuming it."),
) -> None:
    """Import an ImageNet-style class-folder tree with ground-truth labels; resumable by shard."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.importers import import_folders

    config = FoldersImportConfig(
        root=root.expanduser(),
        out=out.expanduser(),
        layout=layout,
        labels=labels,
        source=source,
        license=license,
        key_prefix=key_prefix,
        shard_size=shard_size,
        workers=workers,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        summary = import_folders(config, progress)
    failures = ", ".join(f"{esc(k)} {v}" for k, v in summary["failures"].items()) or "none"
    console().print(
        f"[bold green]import folders[/] {summary['successes']:,} image(s) in {summary['classes_imported']} class(es) "
        f"of {esc(summary['label_set'])}; {summary['shards_written']} shard(s) written, {summary['shards_skipped']} already done; "
        f"failures: {failures}; {summary['skipped_folders']} folder(s) not in the label set skipped -> {esc(config.out)}"
    )


@import_app.command("img2dataset")
def img2dataset(
    input: Path = typer.Argument(
        ...,
        metavar="DIR",
        help="img2dataset's --output_folder (webdataset output: NNNNN.tar + NNNNN.parquet + NNNNN_stats.json).",
    ),
    out: Path = typer.Option(..., "--out", help="Output image stage directory."),
    key_col: str = typer.Option(
        _I["key_col"].default,
        "--key-col",
        help="Column saved with img2dataset --save_additional_columns holding each row's key (e.g. the janus match key).",
    ),
    key_prefix: str = typer.Option(_I["key_prefix"].default, "--key-prefix", help="Prepended to every key."),
    source: str = typer.Option(_I["source"].default, "--source", help="Provenance source: laion | yfcc | custom | ..."),
    license: str = typer.Option(
        _I["license"].default, "--license", help="Licence for rows whose own license/LICENSE column is empty."
    ),
    caption_col: str = typer.Option(
        _I["caption_col"].default, "--caption-col", help="Column copied to title (img2dataset's caption)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output instead of resuming it."),
) -> None:
    """Re-key an img2dataset download into an image stage keyed by a saved column; resumable by shard."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.importers import import_img2dataset

    config = Img2datasetImportConfig(
        input=input.expanduser(),
        out=out.expanduser(),
        key_col=key_col,
        key_prefix=key_prefix,
        source=source,
        license=license,
        caption_col=caption_col,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        summary = import_img2dataset(config, progress)
    console().print(
        f"[bold green]import img2dataset[/] {summary['rows']:,} row(s), {summary['successes']:,} image(s), "
        f"{summary['failed']:,} failed download(s) kept as rows; {summary['skipped_without_key']:,} row(s) without "
        f"{esc(config.key_col)} left out; {summary['shards_written']} shard(s) written, {summary['shards_skipped']} already done -> {esc(config.out)}"
    )


@import_app.command("url-list")
def url_list(
    stage_dir: Path = typer.Argument(
        ..., metavar="STAGE_DIR", help="A janus match output or a metadata import (openimages, yfcc, laion)."
    ),
    out: Path = typer.Option(..., "--out", help="Parquet file to write (img2dataset's --url_list)."),
    url_col: Optional[str] = typer.Option(None, "--url-col", help="URL column (default: URL or url)."),
    text_col: Optional[str] = typer.Option(
        None, "--text-col", help="Caption column (default: TEXT, text or caption when present)."
    ),
    key_col: str = typer.Option(
        _U["key_col"].default, "--key-col", help="Name for the match key column (img2dataset reserves 'key')."
    ),
    all_rows: bool = typer.Option(False, "--all-rows", help="Keep unlabelled rows (label -1) too."),
) -> None:
    """Write the labelled rows of a match output or metadata import as an img2dataset input list."""
    from janus_build.cli.common import console, esc
    from janus_build.importers import write_url_list

    result = write_url_list(
        UrlListConfig(
            stage_dir=stage_dir.expanduser(),
            out=out.expanduser(),
            url_col=url_col,
            text_col=text_col,
            key_col=key_col,
            all_rows=all_rows,
        )
    )
    console().print(
        f"[bold green]import url-list[/] {result['written']:,} of {result['rows']:,} row(s) -> {esc(result['out'])} "
        f"(columns {esc(result['key_col'])}, {esc(result['url_col'])}"
        + (f", {esc(result['text_col'])})" if result["text_col"] else ")")
    )


@import_app.command("imagenet-captions")
def imagenet_captions(
    captions: Path = typer.Argument(
        ..., metavar="CAPTIONS", help="ImageNet-Captions' imagenet_captions.json (or the .zip holding it)."
    ),
    imagenet: Path = typer.Option(..., "--imagenet", help="ImageNet train folder: ROOT/<wnid>/<filename>."),
    out: Path = typer.Option(..., "--out", help="Output image stage directory."),
    labels: str = typer.Option(_C["labels"].default, "--labels", help="Label set with wnids: in100 | in1k | FILE."),
    key_prefix: str = typer.Option(_C["key_prefix"].default, "--key-prefix", help="Keys: path_key(prefix, wnid/file)."),
    license: str = typer.Option(_C["license"].default, "--license", help="Provenance licence of every image."),
    shard_size: int = typer.Option(_C["shard_size"].default, "--shard-size", help="Images per output shard."),
    workers: int = typer.Option(_C["workers"].default, "--workers", help="Threads reading files."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE),
) -> None:
    """Join ImageNet-Captions (title, tags, description) to ImageNet train images; resumable."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.importers import import_imagenet_captions

    config = ImagenetCaptionsConfig(
        captions=captions.expanduser(),
        root=imagenet.expanduser(),
        out=out.expanduser(),
        labels=labels,
        key_prefix=key_prefix,
        license=license,
        shard_size=shard_size,
        workers=workers,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        summary = import_imagenet_captions(config, progress)
    console().print(
        f"[bold green]import imagenet-captions[/] {summary['successes']:,} image(s) with captions; "
        + _counts(summary, "captions_of_other_classes", "captions_without_images", "images_without_captions")
        + f" -> {esc(config.out)}"
    )


@import_app.command("openimages")
def openimages(
    images_csv: Path = typer.Option(
        ..., "--images-csv", help="Image list CSV (oidv6-train-images-with-labels-with-rotation.csv)."
    ),
    labels_csv: Path = typer.Option(
        ..., "--labels-csv", help="Human image-level labels (oidv7-train-annotations-human-imagelabels.csv)."
    ),
    out: Path = typer.Option(..., "--out", help="Output stage directory."),
    classes_csv: Optional[Path] = typer.Option(
        None, "--classes-csv", help="Class descriptions (oidv7-class-descriptions.csv)."
    ),
    narratives: Optional[list[Path]] = typer.Option(
        None, "--narratives", help="Localized Narratives JSONL (repeatable)."
    ),
    mapping: Optional[Path] = typer.Option(
        None, "--mapping", help="LabelName -> class_id TSV (default: the shipped mapping)."
    ),
    labels: str = typer.Option(_O["labels"].default, "--labels", help="Label set the mapped classes belong to."),
    image_dir: Optional[Path] = typer.Option(
        None, "--image-dir", help="Local download of <ImageID>.jpg: write an image stage."
    ),
    key_prefix: str = typer.Option(_O["key_prefix"].default, "--key-prefix", help="Keys: <prefix>-<ImageID>."),
    keep_ambiguous: bool = typer.Option(
        False, "--keep-ambiguous", help="Keep images mapped to several classes (label -1)."
    ),
    shard_size: int = typer.Option(_O["shard_size"].default, "--shard-size", help="Rows per output shard."),
    workers: int = typer.Option(_O["workers"].default, "--workers", help="Threads reading image files."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE),
) -> None:
    """Open Images with human labels mapped to a label set (OI100), narratives as annot_caption."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.importers import import_openimages

    config = OpenImagesConfig(
        images_csv=images_csv.expanduser(),
        labels_csv=labels_csv.expanduser(),
        out=out.expanduser(),
        classes_csv=classes_csv.expanduser() if classes_csv else None,
        narratives=tuple(p.expanduser() for p in narratives or ()),
        mapping=mapping.expanduser() if mapping else None,
        labels=labels,
        image_dir=image_dir.expanduser() if image_dir else None,
        key_prefix=key_prefix,
        keep_ambiguous=keep_ambiguous,
        shard_size=shard_size,
        workers=workers,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        summary = import_openimages(config, progress)
    console().print(
        f"[bold green]import openimages[/] {summary['rows']:,} image(s) of {len(summary['labelled_per_class'])} class(es); "
        + _counts(summary, "ambiguous_images", "labelled_images_not_in_list", "narratives_attached", "successes")
        + f" -> {esc(config.out)}"
    )


@import_app.command("yfcc")
def yfcc(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT", help="YFCC100M metadata: Webscope parts, yfcc100m_dataset(.bz2/.gz) or parquet."
    ),
    out: Path = typer.Option(..., "--out", help="Output metadata stage directory."),
    subset: Optional[Path] = typer.Option(
        None, "--subset", help="OpenAI's yfcc100m_subset_data.tsv(.bz2): keep the 15M subset."
    ),
    keep_videos: bool = typer.Option(False, "--keep-videos", help="Keep videos (marker 1)."),
    key_prefix: str = typer.Option(_Y["key_prefix"].default, "--key-prefix", help="Keys: <prefix>-<photo id>."),
    shard_size: int = typer.Option(_Y["shard_size"].default, "--shard-size", help="Rows per output shard."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE),
) -> None:
    """YFCC100M / YFCC15M metadata as distributed -> decoded metadata shards; resumable."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.importers import import_yfcc

    config = YfccConfig(
        inputs=tuple(p.expanduser() for p in inputs),
        out=out.expanduser(),
        subset=subset.expanduser() if subset else None,
        keep_videos=keep_videos,
        key_prefix=key_prefix,
        shard_size=shard_size,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        summary = import_yfcc(config, progress)
    console().print(
        f"[bold green]import yfcc[/] {summary['rows']:,} of {summary.get('rows_read', 0):,} row(s); "
        + _counts(summary, "not_in_subset", "videos_dropped", "malformed_lines", "dates_taken_unusable")
        + f" -> {esc(config.out)}"
    )


@import_app.command("laion")
def laion(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT", help="LAION parquet files, directories or globs (400M or 2B columns)."
    ),
    out: Path = typer.Option(..., "--out", help="Output metadata stage directory."),
    license: str = typer.Option(
        _L["license"].default, "--license", help="Licence where LAION's LICENSE is '?' or empty."
    ),
    key_prefix: str = typer.Option(
        _L["key_prefix"].default, "--key-prefix", help="Keys: <prefix>-<SAMPLE_ID or hash>."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE),
) -> None:
    """LAION parquet as distributed -> metadata shards with provenance (LICENSE, NSFW kept)."""
    from janus_build.cli.common import RichProgress, console, esc
    from janus_build.importers import import_laion

    config = LaionConfig(
        inputs=tuple(inputs), out=out.expanduser(), license=license, key_prefix=key_prefix, overwrite=overwrite
    )
    with RichProgress() as progress:
        summary = import_laion(config, progress)
    console().print(
        f"[bold green]import laion[/] {summary['rows']:,} row(s) in {summary['shards']} shard(s), "
        f"{summary['shards_written']} written this run -> {esc(config.out)}"
    )
