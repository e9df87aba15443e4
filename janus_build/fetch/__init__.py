"""``janus fetch``: Flickr search with the paper's queries, resumable, into metadata and image shards.

Modules: :mod:`.config` (the options), :mod:`.queries` (the query language, its checker, local
application), :mod:`.flickr` (API client: rate limit, retries, licences, reply parsing),
:mod:`.state` (resume state), :mod:`.search` (one class: windows, pages, local judgement),
:mod:`.metadata` (metadata and dropped shards), :mod:`.download` (img2dataset, re-keyed into
image shards), :mod:`.report` (``report.json``), :mod:`.pipeline` (``run``: the stage).
"""

from janus_build.fetch.config import FetchConfig
from janus_build.fetch.pipeline import FetchResult, run, run_fetch

__all__ = ["FetchConfig", "FetchResult", "run", "run_fetch"]
