"""Provenance of a balanced sample: which value of which column wins, and how a sample is credited.

Precedence (issue 11): a value present in the source row always beats a default. For each
field (licence, owner, title) the candidates are read in this order, and the first that is not
a placeholder wins:

1. the source row itself (a match output row, or the image index row of a ``labels=``/``tags=``
   source), each alias in order (``license``, ``LICENSE``, ``licence``);
2. for a ``match=`` source, the image stage's index row of the same key (what the download
   recorded, e.g. img2dataset's saved ``LICENSE``), same aliases.

A placeholder (empty, ``?``, ``unknown``, ``none``, ``n/a``: what LAION's ``LICENSE`` holds for
most rows, or what an importer writes when it knows nothing) never beats a real value from a
later layer; when every candidate is a placeholder the first one is kept, so ``?`` stays ``?``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

LICENSE_COLUMNS = ("license", "LICENSE", "licence")
OWNER_COLUMNS = ("owner", "ownername", "owner_name", "author")
TITLE_COLUMNS = ("title", "TITLE")
OWNER_NAME_COLUMNS = ("owner_name", "ownername")  # attribution prefers these to an owner id
PAGE_URL_COLUMNS = ("page_url",)
#: what a match source's rows may take from its image stage's index
FALLBACK_COLUMNS = (*LICENSE_COLUMNS, *OWNER_COLUMNS, *TITLE_COLUMNS, *PAGE_URL_COLUMNS)
PLACEHOLDERS = frozenset({"", "?", "unknown", "none", "null", "n/a", "na", "-"})


def is_placeholder(value: Any) -> bool:
    """True for a missing value or one that only says 'unknown'."""
    return value is None or str(value).strip().lower() in PLACEHOLDERS


def pick(layers: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str | None:
    """The winning value of a field whose columns are ``names``, across ``layers`` (most
    authoritative first): the first real value, else the first non-empty placeholder, else None."""
    fallback = None
    for layer in layers:
        for name in names:
            value = layer.get(name)
            if value is None or not str(value).strip():
                continue
            if not is_placeholder(value):
                return str(value)
            fallback = fallback if fallback is not None else str(value)
    return fallback


def merged_metadata(row: Mapping[str, Any], stage_row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The source row as it is, with the image stage's fields added where the row lacks the column
    or leaves it blank (the ``source_metadata`` written into each sample's ``json``; the winning
    values are the sample's own ``license``/``owner``/``title`` fields)."""
    merged = dict(row)
    for name, value in (stage_row or {}).items():
        current = merged.get(name)
        if (current is None or not str(current).strip()) and value is not None:
            merged[name] = value
    return merged


def fields(row: Mapping[str, Any], stage_row: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``license``, ``owner``, ``title``, ``owner_name`` and ``page_url`` of a sample by the precedence above."""
    layers = [row] if stage_row is None else [row, stage_row]
    return {
        "license": pick(layers, LICENSE_COLUMNS),
        "owner": pick(layers, OWNER_COLUMNS),
        "title": pick(layers, TITLE_COLUMNS),
        "owner_name": pick(layers, OWNER_NAME_COLUMNS),
        "page_url": pick(layers, PAGE_URL_COLUMNS),
    }


def is_cc_by(licence: str | None) -> bool:
    """CC licences that require attribution (BY, BY-SA, BY-NC, BY-ND, ...; Flickr's 'Attribution ...')."""
    if not licence:
        return False
    text = licence.lower()
    if "attribution" in text:
        return True
    tokens = re.split(r"[^a-z0-9]+", text)
    return "by" in tokens and ("cc" in tokens or "creativecommons" in text)
