"""``janus fetch``: Flickr search with the paper's queries, resumable, into metadata and image shards.

Modules: :mod:`.queries` (the query language, its checker, local application),
:mod:`.flickr` (API client: rate limit, retries, licences), :mod:`.state` (resume state),
:mod:`.pipeline` (the stage), :mod:`.download` (img2dataset, re-keyed into image shards).
"""

from janus_build.fetch.pipeline import FetchConfig, FetchResult, run_fetch

__all__ = ["FetchConfig", "FetchResult", "run_fetch"]
