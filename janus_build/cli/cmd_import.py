"""``janus import``: class folders, img2dataset downloads and the paper's public sources -> stages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app
from janus_build.importers.config import FoldersImportConfig, Img2datasetImportConfig, UrlListConfig

import_app = typer.Typer(
    help="Bring existing image collections into the image-stage format (read by balance, tag, caption).",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

_F = FoldersImportConfig.__dataclass_fields__  # the defaults live in the config dataclasses only
_I = Img2datasetImportConfig.__dataclass_fields__
_U = UrlListConfig.__dataclass_fields__


@import_app.command("folders")
def folders(
    root: Path = typer.Argument(
        ..., help="Class-folder tree: ROOT/<class folder>/<images> (sub-folders are read too)."
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
    from janus_build.cli.common import RichProgress, console
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
    failures = ", ".join(f"{k} {v}" for k, v in summary["failures"].items()) or "none"
    console().print(
        f"[bold green]import folders[/] {summary['successes']:,} image(s) in {summary['classes_imported']} class(es) "
        f"of {summary['label_set']}; {summary['shards_written']} shard(s) written, {summary['shards_skipped']} already done; "
        f"failures: {failures}; {summary['skipped_folders']} folder(s) not in the label set skipped -> {config.out}"
    )


@import_app.command("img2dataset")
def img2dataset(
    input: Path = typer.Argument(
        ..., help="img2dataset's --output_folder (webdataset output: NNNNN.tar + NNNNN.parquet + NNNNN_stats.json)."
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
    from janus_build.cli.common import RichProgress, console
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
        f"{config.key_col} left out; {summary['shards_written']} shard(s) written, {summary['shards_skipped']} already done -> {config.out}"
    )


@import_app.command("url-list")
def url_list(
    stage_dir: Path = typer.Argument(..., help="A janus match output or a metadata import (openimages, yfcc, laion)."),
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
    from janus_build.cli.common import console
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
        f"[bold green]import url-list[/] {result['written']:,} of {result['rows']:,} row(s) -> {result['out']} "
        f"(columns {result['key_col']}, {result['url_col']}"
        + (f", {result['text_col']})" if result["text_col"] else ")")
    )
