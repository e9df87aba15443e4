"""``janus tag``: a fast, crash-safe hand-tagging queue served as a local web page.

* :mod:`janus_build.tag.db`: the SQLite (WAL) queue: items, decisions, history, leases.
* :mod:`janus_build.tag.server`: the Starlette app (JSON API, images by key, static page).
* :mod:`janus_build.tag.stats`: Table 8 figures, Cohen's kappa, audit precision, the export.
* :mod:`janus_build.tag.audit`: a per-class sample of ``janus match`` output to judge.

Scripted use (e.g. tagging from known answers)::

    from janus_build.tag import open_queue, record_decisions, export_tags
    with open_queue("fetch_out") as queue:
        record_decisions(queue, {"flickr-1": "in", "flickr-2": "out"}, annotator="demo")
        export_tags(queue, "fetch_out/tags.parquet")
"""

from janus_build.tag.db import Decision, TagQueue, default_db_path, open_queue, record_decisions
from janus_build.tag.stats import compute_stats, export_tags

__all__ = ["Decision", "TagQueue", "compute_stats", "default_db_path", "export_tags", "open_queue", "record_decisions"]
