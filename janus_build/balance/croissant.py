"""The Croissant 1.0 (JSON-LD) description of a ``janus balance`` output: ``DIR/croissant.json``.

It describes the files (the parquet index and webdataset tars of each split), one record set per
split read from the index (key, label, caption, provenance), and inline record sets with what
the dataset card says in prose: the classes with their per-class counts, the sources with their
label source and measured accuracy, the licences, the contamination figures when a ``janus
dedup`` report was given, and the command that built it. The responsible-AI fields (``rai:``)
say how the data were collected, labelled, filtered and what is known to be missing.
Validated in the tests with ``mlcroissant`` (https://github.com/mlcommons/croissant). The
recommended ``datePublished`` is left out (mlcroissant warns) so a rebuild writes the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from janus_build.balance.config import BalanceConfig
from janus_build.core.fsio import atomic_write_json
from janus_build.labels import LabelSet

CROISSANT_NAME = "croissant.json"
CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
PAPER = (
    "Feuer, Joshi, Pham, Hegde. Distributionally Robust Classification on a Data Budget. "
    "Transactions on Machine Learning Research, 2023."
)
# index columns described per split: (column, Croissant data type)
_INDEX_FIELDS = (
    ("key", "sc:Text"),
    ("label", "sc:Integer"),
    ("caption", "sc:Text"),
    ("source", "sc:Text"),
    ("source_id", "sc:Text"),
    ("url", "sc:URL"),
    ("license", "sc:Text"),
    ("owner", "sc:Text"),
    ("title", "sc:Text"),
    ("label_source", "sc:Text"),
    ("source_name", "sc:Text"),
    ("status", "sc:Text"),
)


def _field(record_set: str, name: str, data_type: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": "cr:Field", "@id": f"{record_set}/{name}", "name": name, "dataType": data_type}
    if source is not None:
        out["source"] = source
    return out


def _inline(name: str, description: str, columns: list[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    """A record set whose records are written inline (``data``)."""
    return {
        "@type": "cr:RecordSet",
        "@id": name,
        "name": name,
        "description": description,
        "field": [_field(name, c, t) for c, t in columns],
        "data": [{f"{name}/{c}": value for (c, _t), value in zip(columns, row)} for row in rows],
    }


def _split_sets(stats: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    files, sets = [], []
    for split in ("train", "val"):
        if not stats["shards"][split]:
            continue
        files += [
            {
                "@type": "cr:FileSet",
                "@id": f"{split}-index",
                "name": f"{split}-index",
                "description": f"parquet index of the {split} shards (one row per sample)",
                "encodingFormat": "application/x-parquet",
                "includes": f"{split}/*.parquet",
            },
            {
                "@type": "cr:FileSet",
                "@id": f"{split}-tars",
                "name": f"{split}-tars",
                "description": f"webdataset tars of the {split} split: <key>.jpg, .cls, .txt, .json",
                "encodingFormat": "application/x-tar",
                "includes": f"{split}/*.tar",
            },
        ]
        fields = [
            _field(split, c, t, {"fileSet": {"@id": f"{split}-index"}, "extract": {"column": c}})
            for c, t in _INDEX_FIELDS
        ]
        fields[1]["references"] = {"field": {"@id": "classes/class_id"}}
        sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": split,
                "name": split,
                "description": f"the {split} samples; image bytes are the <key>.jpg members of {split}/*.tar",
                "key": {"@id": f"{split}/key"},
                "field": fields,
            }
        )
    return files, sets


def _summary_sets(stats: dict[str, Any], label_set: LabelSet) -> list[dict[str, Any]]:
    per_class = stats["per_class"]
    accuracy = stats.get("label_accuracy") or {}
    classes = _inline(
        "classes",
        f"the label set {label_set.name} with the samples selected per class",
        [("class_id", "sc:Integer"), ("name", "sc:Text"), ("samples", "sc:Integer"), ("available", "sc:Integer")],
        [
            [cid, label_set.names.get(cid, ""), per_class[str(cid)]["selected"], per_class[str(cid)]["available"]]
            for cid in label_set.ids
        ],
    )
    classes["key"] = {"@id": "classes/class_id"}
    sources = _inline(
        "sources",
        "the labelled sources, how their labels were obtained and the measured label accuracy (-1: not measured)",
        [("name", "sc:Text"), ("kind", "sc:Text"), ("label_source", "sc:Text"), ("selected", "sc:Integer")]
        + [("label_accuracy", "sc:Float")],
        [
            [
                n,
                s["kind"],
                s["label_source"],
                s["selected"],
                float(accuracy.get(n) if accuracy.get(n) is not None else -1),
            ]
            for n, s in stats["sources"].items()
        ],
    )
    licences = _inline(
        "licences",
        "licences of the selected samples",
        [("license", "sc:Text"), ("samples", "sc:Integer")],
        [[k, v] for k, v in stats["licenses"].items()],
    )
    sets = [classes, sources, licences]
    report = (stats.get("contamination") or {}).get("report") or {}
    per_set = report.get("eval_sets") if isinstance(report.get("eval_sets"), dict) else {}
    if per_set:
        columns = sorted({k for v in per_set.values() if isinstance(v, dict) for k in v})
        rows = [[name, *(str(v.get(c, "")) for c in columns)] for name, v in per_set.items() if isinstance(v, dict)]
        sets.append(
            _inline(
                "contamination",
                "near-duplicates of evaluation images found by janus dedup, per evaluation set",
                [("eval_set", "sc:Text"), *((c, "sc:Text") for c in columns)],
                rows,
            )
        )
    return sets


def _rai(config: BalanceConfig, stats: dict[str, Any]) -> dict[str, str]:
    sources = ", ".join(f"{n} ({s['kind']}, labels: {s['label_source']})" for n, s in stats["sources"].items())
    removed = ", ".join(f"{v} by {k}" for k, v in stats["dedup"]["removed"].items()) or "none"
    contamination = stats.get("contamination")
    return {
        "rai:dataCollection": f"Images gathered by janus-build stages from these sources: {sources}.",
        "rai:dataCollectionType": "Web Scraping; Manual Human Curation; Secondary Data Analysis",
        "rai:dataAnnotationProtocol": (
            "Labels are ImageNet class ids from ground truth, human tagging (janus tag: an 'in' decision "
            "with no 'out'), or caption subset matching (janus match strategies sc/strict/mc); the source of "
            "every label is its label_source field."
        ),
        "rai:dataPreprocessingProtocol": (
            f"janus balance --balance {config.balance}; duplicates removed: {removed}; image headers validated "
            f"({stats['invalid_images']['count']} failed, kept as index rows without image); "
            "PNG/WebP re-encoded to JPEG."
        ),
        "rai:dataLimitations": (
            f"{len(stats['short_classes'])} class(es) below their minimum; caption-matched labels are noisy. "
            + (
                "Evaluation-set contamination: see the contamination record set."
                if contamination
                else "Evaluation-set contamination was not checked."
            )
        ),
        "rai:personalSensitiveInformation": (
            "Web images may show people; titles and owner names are kept for attribution."
        ),
        "rai:dataUseCases": "Training and evaluating image classifiers and vision-language models for robustness.",
    }


def croissant(out: Path, config: BalanceConfig, stats: dict[str, Any], label_set: LabelSet) -> dict[str, Any]:
    """The Croissant JSON-LD document (a dict)."""
    files, split_sets = _split_sets(stats)
    built = stats.get("provenance") or {}
    command = " ".join(built.get("command") or []) or "(the Python API)"
    licences = sorted(stats["licenses"])
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": out.name,
        "description": (
            f"A JANuS-style image classification dataset built by janus-build {built.get('janus_build_version')} "
            f"with: {command}"
        ),
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "url": f"file:{out.name}",
        "version": "1.0.0",
        "license": licences[0] if len(licences) == 1 else "Mixed: " + "; ".join(licences),
        "citeAs": PAPER,
        "keywords": ["image classification", "distribution shift", "janus-build"],
        "distribution": files,
        "recordSet": [*_summary_sets(stats, label_set), *split_sets],
        **_rai(config, stats),
    }


def write_croissant(out: Path, config: BalanceConfig, stats: dict[str, Any], label_set: LabelSet) -> None:
    """Write ``croissant.json`` into ``out``."""
    atomic_write_json(out / CROISSANT_NAME, croissant(out, config, stats, label_set))
