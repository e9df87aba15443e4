"""``janus import imagenet-captions``: ImageNet-Captions joined to an ImageNet train folder.

ImageNet-Captions (Fang et al., *Data Determines Distributional Robustness in CLIP*, ICML 2022;
github.com/mlfoundations/imagenet-captions) publishes ``imagenet_captions.json`` (zipped as
``imagenet_captions.zip``): one JSON list of ``{"filename", "title", "tags", "description",
"wnid"}`` objects (keys in any order, ``tags`` a list of strings, non-ASCII as ``\\u`` escapes),
the original Flickr text of about 450k ImageNet training images. Each record is joined to
``ROOT/<wnid>/<filename>``; the image stage carries the label of the wnid, ``label_source =
ground_truth``, and the text fields kept apart (``title``, ``tags``, ``description``).

The JSON is read element by element (memory: the images imported, not the file). Captions of
classes outside the label set are skipped; captions whose file is missing and images without a
caption are counted and listed (examples) in the summary.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.keys import path_key
from janus_build.errors import ConfigError, InputError
from janus_build.importers.common import (
    MAX_EXAMPLES,
    FileSample,
    clean_html,
    describe_inputs,
    inputs_fingerprint,
    iter_json_list,
    open_stage,
    open_text,
    summarise_index,
    write_image_shards,
)
from janus_build.importers.config import FILE_EXTENSIONS, ImagenetCaptionsConfig
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

FIELDS = ("filename", "wnid", "title", "description", "tags")


def _tags(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(t for t in (clean_html(str(v)) for v in value if v is not None) if t)
    return clean_html(str(value or ""))


class _Join:
    """Joins caption records to files, counting what does not join."""

    def __init__(self, root: Path, wnids: Mapping[str, int], config: ImagenetCaptionsConfig) -> None:
        self.root, self.wnids, self.config = root, wnids, config
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = {}
        self.joined: set[str] = set()

    def note(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if len(self.examples.setdefault(kind, [])) < MAX_EXAMPLES:
            self.examples[kind].append(example)

    def sample(self, record: Any, number: int) -> FileSample | None:
        if not isinstance(record, dict) or not all(f in record for f in ("filename", "wnid")):
            self.note("malformed_records", f"element {number}")
            return None
        wnid, filename = str(record["wnid"]), str(record["filename"])
        self.counts["captions"] += 1
        if wnid not in self.wnids:
            self.counts["captions_of_other_classes"] += 1
            return None
        relative = f"{wnid}/{filename}"
        if relative in self.joined:
            self.note("duplicate_captions", relative)
            return None
        if "/" in filename or not (self.root / relative).is_file():
            self.note("captions_without_images", relative)
            return None
        self.joined.add(relative)
        return FileSample(path_key(self.config.key_prefix, relative), self.root / relative, self._metadata(record))

    def _metadata(self, record: dict[str, Any]) -> dict[str, Any]:
        wnid, filename = str(record["wnid"]), str(record["filename"])
        return {
            schemas.SOURCE: "imagenet",
            schemas.LABEL: self.wnids[wnid],
            schemas.SOURCE_ID: f"{wnid}/{filename}",
            schemas.URL: None,
            schemas.LICENSE: self.config.license,
            schemas.OWNER: None,
            schemas.TITLE: clean_html(str(record.get("title") or "")),
            schemas.LABEL_SOURCE: "ground_truth",
            "wnid": wnid,
            "description": clean_html(str(record.get("description") or ""), strip_tags=True),
            "tags": _tags(record.get("tags")),
        }

    def samples(self, path: Path) -> Iterator[FileSample]:
        with open_text(path, ".json") as handle:
            for number, record in enumerate(iter_json_list(handle, os.fspath(path))):
                sample = self.sample(record, number)
                if sample is not None:
                    yield sample

    def images_without_captions(self) -> None:
        """Count the image files of the label set's classes that no caption named."""
        for wnid in sorted(self.wnids):
            folder = self.root / wnid
            if not folder.is_dir():
                continue
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_file() and os.path.splitext(entry.name)[1].lower() in FILE_EXTENSIONS:
                    relative = f"{wnid}/{entry.name}"
                    if relative not in self.joined:
                        self.note("images_without_captions", relative)


def _wnids(labels: str) -> dict[str, int]:
    from janus_build.labels import load_label_set

    label_set = load_label_set(labels)
    if not label_set.wnids:
        raise ConfigError(f"--labels {labels}: the label set has no wnid column (ImageNet-Captions names wnids)")
    return {wnid: class_id for class_id, wnid in label_set.wnids.items()}


def import_imagenet_captions(config: ImagenetCaptionsConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Join ImageNet-Captions to an ImageNet train folder and write an image stage.

    Returns:
        The summary written to the manifest: captions read, images imported (successes and
        failures), captions of other classes, captions without images, images without captions
        (each with examples), per-class counts.

    Raises:
        InputError: the captions file or ROOT is missing, or the JSON is not a list.
        OutputError: --out holds something else, or an earlier run with other options.
    """
    captions, root = Path(config.captions), Path(config.root)
    if not captions.is_file():
        raise InputError(f"CAPTIONS {captions}: no such file (expected imagenet_captions.json or .zip)")
    if not root.is_dir():
        raise InputError(f"--imagenet {root}: no such directory (expected ImageNet train: ROOT/<wnid>/<file>)")
    join = _Join(root, _wnids(config.labels), config)
    inputs = describe_inputs([captions]) + [{"root": os.fspath(root.resolve())}]
    with open_stage(config, "import-imagenet-captions", inputs) as stage:
        progress.start("import imagenet-captions", total=None, unit="images")
        counts = write_image_shards(
            stage,
            join.samples(captions),
            shard_size=config.shard_size,
            workers=config.workers,
            index_schema=schemas.IMPORT_IMAGENET_CAPTIONS_INDEX,
            fingerprint=inputs_fingerprint([captions]),
            progress=progress,
            task="import imagenet-captions",
        )
        progress.finish("import imagenet-captions")
        join.images_without_captions()
        for kind in ("captions_without_images", "images_without_captions", "malformed_records"):
            if join.counts[kind]:
                log.warning("%d %s, e.g. %s", join.counts[kind], kind.replace("_", " "), join.examples[kind][:3])
        summary = {
            **summarise_index(stage),
            **{k: join.counts[k] for k in ("captions", "captions_of_other_classes")},
            **{k: join.counts[k] for k in join.examples},
            "examples": join.examples,
            "shards": counts["shards"],
            "shards_written": counts["shards_written"],
        }
        stage.finish(summary)
    return summary
