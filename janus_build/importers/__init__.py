"""``janus import``: existing collections and the paper's public sources -> janus stages.

One module per source, each reading it as its publishers distribute it:

* :mod:`.folders` — ImageNet-style class-folder trees -> an image stage (ground-truth labels);
* :mod:`.imagenet_captions` — ImageNet-Captions' JSON joined to an ImageNet train folder;
* :mod:`.openimages` — Open Images CSVs + Localized Narratives, labels mapped to IN100;
* :mod:`.yfcc` — YFCC100M / YFCC15M metadata (Webscope TSV, Multimedia Commons, parquet);
* :mod:`.laion` — LAION parquet (400M and 2B column sets);
* :mod:`.urllist` and :mod:`.img2dataset` — a labelled stage -> img2dataset -> an image stage.

:mod:`.config` holds the options (light imports, for the CLI); :mod:`.common` the parts they
share (compressed inputs, licences, resumable row and image shard writers over the core).
"""

from __future__ import annotations

from typing import Any

from janus_build.importers.config import (
    FoldersImportConfig,
    ImagenetCaptionsConfig,
    Img2datasetImportConfig,
    LaionConfig,
    OpenImagesConfig,
    UrlListConfig,
    YfccConfig,
)

_LAZY = {
    "import_folders": "folders",
    "import_img2dataset": "img2dataset",
    "write_url_list": "urllist",
    "import_imagenet_captions": "imagenet_captions",
    "import_openimages": "openimages",
    "import_yfcc": "yfcc",
    "import_laion": "laion",
}

__all__ = [
    "FoldersImportConfig",
    "ImagenetCaptionsConfig",
    "Img2datasetImportConfig",
    "LaionConfig",
    "OpenImagesConfig",
    "UrlListConfig",
    "YfccConfig",
    "run",
    *_LAZY,
]


_RUNNERS = {
    FoldersImportConfig: "import_folders",
    Img2datasetImportConfig: "import_img2dataset",
    ImagenetCaptionsConfig: "import_imagenet_captions",
    OpenImagesConfig: "import_openimages",
    YfccConfig: "import_yfcc",
    LaionConfig: "import_laion",
}


def run(config: Any, progress: Any = None) -> dict[str, Any]:
    """The stage entry: run the importer that ``config``'s type names; returns its summary."""
    from janus_build.progress import NULL_PROGRESS

    name = _RUNNERS.get(type(config))
    if name is None:
        raise TypeError(f"not an import config: {type(config).__name__}")
    return __getattr__(name)(config, progress or NULL_PROGRESS)


def __getattr__(name: str) -> Any:  # PEP 562: the CLI imports configs without pyarrow
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"janus_build.importers.{_LAZY[name]}"), name)
    raise AttributeError(name)
