"""``janus match``: n-gram subset matching of captions to classes over parquet shards.

Modules: ``config`` (the options), ``inputs`` (which files, their keys), ``matcher`` (the
vectorised matching), ``shard`` (one input file -> one labelled shard: the worker of both
engines), ``engine`` (the run: checks, done-set, local workers, summary), ``spark`` (the same
worker on Spark executors), ``quality`` (figures, chart, gates).

Public API: :class:`MatchConfig`, :func:`run_match`, and for in-memory use
:class:`~janus_build.match.matcher.TermTable` / :class:`~janus_build.match.matcher.Matcher`.
"""

from typing import Any

from janus_build.match.config import MatchConfig

__all__ = ["MatchConfig", "run_match"]


def __getattr__(name: str) -> Any:  # run_match loads pyarrow: only when asked for
    if name == "run_match":
        from janus_build.match.engine import run_match

        return run_match
    raise AttributeError(name)
