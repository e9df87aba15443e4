"""BLIP's known artefacts, removed from captions before spell checking (never "corrected").

BLIP (base and large, with or without the ``a picture of`` prompt) glues word pieces into
non-words that open many captions: ``arafed man in a suit``, ``araffe sitting on a bench``,
``arafly dressed woman``. They mean nothing (they come from the ``ara`` + ``##fed`` pieces the
decoder learnt from web alt-text), so a spell checker can only turn them into wrong real
words (``arafed`` -> ``armed``, ``araffe`` -> ``agraffe``). BLIP-large also opens captions
with ``there is a`` / ``there are`` and sometimes repeats a word (``a a dog``).

:data:`ARTEFACT_WORDS` is the documented list; :data:`ARTEFACT` also matches the spellings
that differ only in doubled letters (``arrafed``, ``araaffe``) and keeps real words that merely
begin the same way (``Arafat``, ``arafura``).
"""

from __future__ import annotations

import re

# The artefact words seen in BLIP outputs (lower case); ARTEFACT matches these and their
# doubled-letter variants.
ARTEFACT_WORDS = (
    "araf",
    "arafe",
    "arafed",
    "arafd",
    "araffe",
    "araffes",
    "araffed",
    "arafian",
    "arafly",
    "araffy",
    "arafy",
)
ARTEFACT = re.compile(r"\ba+r+a+f+(?:e+d?|e+s|d|ian|l?y)?\b", re.IGNORECASE)
_LEADING_THERE = re.compile(r"^\s*there\s+(?:is|are)\s+(?=\S)", re.IGNORECASE)
_REPEAT = re.compile(r"\b(\w+)(?:\s+\1\b)+", re.IGNORECASE)
_SPACES = re.compile(r"\s{2,}")


def clean_caption(caption: str) -> str:
    """``caption`` without BLIP's artefact words, a leading ``there is``/``there are``, and
    immediately repeated words.

    >>> clean_caption("arafed man in a suit and tie")
    'man in a suit and tie'
    >>> clean_caption("there is a dog that is sitting on the grass")
    'a dog that is sitting on the grass'
    >>> clean_caption("a a bird on a branch")
    'a bird on a branch'
    """
    if not caption:
        return caption
    text = ARTEFACT.sub(" ", caption)
    text = _SPACES.sub(" ", text).strip()
    text = _LEADING_THERE.sub("", text)
    text = _REPEAT.sub(r"\1", text)
    return text.strip(" ,")


def is_artefact(word: str) -> bool:
    """True for one of BLIP's artefact words (any case)."""
    return bool(ARTEFACT.fullmatch(word))
