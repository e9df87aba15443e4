"""Merging a caption with the sample's title (BLIPTitle) and choosing the prose caption.

BLIP's vocabulary lacks many specialised classes ("a bird on a branch" for a goldfinch), and
the Flickr title often names them. ``caption_blip_title`` is the spell-checked caption followed
by the title's words that the caption does not already contain, in title order, each once;
camera file names ("IMG_1234", "DSC01234.jpg") are dropped from the title first.
"""

from __future__ import annotations

import re

# Camera / phone file names Flickr users leave as titles; they carry no content.
_CAMERA_NAME = re.compile(
    r"^(?:img|dsc|dscn|dscf|dcp|pict|imag|sam|gopr|p|mvi|pxl|wp)[_-]?\d+(?:[_-]\d+)*(?:\.(?:jpe?g|png|heic|tiff?))?$",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"\S+")
_EDGE_PUNCT = "\"'“”‘’.,;:!?()[]{}<>*|/\\"


def _bare(token: str) -> str:
    return token.strip(_EDGE_PUNCT).lower()


def title_words(title: str | None) -> list[str]:
    """The title's words with edge punctuation stripped and camera file names removed."""
    if not title:
        return []
    out = []
    for token in _TOKEN.findall(title):
        word = token.strip(_EDGE_PUNCT)
        if word and not _CAMERA_NAME.match(word):
            out.append(word)
    return out


def merge_title(caption: str | None, title: str | None) -> str | None:
    """``caption`` followed by the title's words it lacks (case-insensitive), each once.

    >>> merge_title("a bird sitting on a branch", "Goldfinch on a branch")
    'a bird sitting on a branch Goldfinch'
    >>> merge_title("a dog on the grass", "IMG_0042.JPG")
    'a dog on the grass'
    """
    seen = {_bare(t) for t in _TOKEN.findall(caption or "")}
    seen.discard("")
    extra = []
    for word in title_words(title):
        key = word.lower()
        if key not in seen:
            seen.add(key)
            extra.append(word)
    if caption is None and not extra:
        return None
    return " ".join(part for part in [(caption or "").strip(), " ".join(extra)] if part)


def prose_caption(human: str | None, blip_title: str | None) -> tuple[str | None, str]:
    """The prose caption and where it came from: a non-blank human caption, else BLIPTitle."""
    if isinstance(human, str) and human.strip():
        return human.strip(), "human"
    return blip_title, "blip_title"
