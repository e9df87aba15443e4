"""``janus match``: n-gram subset matching of captions to classes over parquet shards.

Public API: :class:`MatchConfig`, :func:`run_match`, and for in-memory use
:class:`~janus_build.match.matcher.TermTable` / :class:`~janus_build.match.matcher.Matcher`.
"""

from janus_build.match.engine import MatchConfig, run_match

__all__ = ["MatchConfig", "run_match"]
