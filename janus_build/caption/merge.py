"""Merging a caption with the sample's title (BLIPTitle) and choosing the prose caption.

BLIP's vocabulary lacks many specialised classes ("a bird on a branch" for a goldfinch), and
the Flickr title often names them. ``caption_blip_title`` is the spell-checked caption followed
by the title's words that the caption does not already contain, in title order, each once;
camera file names ("IMG_1234", "DSC01234.jpg") are dropped from the title first.
"""

from __future__ import annotations

import re

# Camera, phone and editor file names that Flickr users leave as titles; they carry no content.
# Each alternative is one naming scheme (see docs/caption.md for the list and its sources).
_CAMERA_STEM = (
    r"(?:"
    r"_?(?:img|dsc|dscn|dscf|dcp|pict|imag|imgp|cimg|hpim|sam|mvi|mov|vid|pxl|wp|dji|sdc|dsci|kif|pana|rimg)"
    r"[_-]?\d{3,}(?:[_-]\d+)*"  # IMG_1234, DSC01234, SAM_0123, PICT0001, IMG_20190612_143012, PXL_2021..._...
    r"|_mg_\d{3,}"  # Canon's Adobe-RGB prefix: _MG_1234
    r"|\d{3}[_-]\d{4}"  # Kodak / HP folder-number names: 100_0234
    r"|p\d{7}"  # Panasonic / Olympus: P1010123
    r"|g[phx]\d{6}|gopr\d{4}"  # GoPro: GOPR0123, GP010123, GH010123, GX010123
    r"|\d{8}[_-]\d{6}(?:\d{3})?"  # phones: 20190612_143012
    r"|\d{4}-\d{2}-\d{2}[ _]\d{2}[.:-]\d{2}[.:-]\d{2}"  # 2019-06-12 14.30.12
    r")"
)
_CAMERA_NAME = re.compile(
    _CAMERA_STEM
    + r"(?:[_ -]?(?:edit|edited|copy|hdr|pano|bw|\(\d+\)|v\d|\d{1,2}))*"  # editors' suffixes: -Edit, copy, (2)
    + r"(?:\.(?:jpe?g|png|heic|heif|tiff?|nef|cr2|cr3|arw|orf|rw2|raf|dng|psd|gif|webp|mov|mp4))?",
    re.IGNORECASE,
)


def is_camera_name(text: str) -> bool:
    """True when ``text`` (a title or one of its words) is a camera or phone file name."""
    text = text.strip()
    return bool(_CAMERA_NAME.fullmatch(text) or _CAMERA_NAME.fullmatch(text.strip(_EDGE_PUNCT)))


_TOKEN = re.compile(r"\S+")
_EDGE_PUNCT = "\"'“”‘’.,;:!?()[]{}<>*|/\\"


def _bare(token: str) -> str:
    return token.strip(_EDGE_PUNCT).lower()


def title_words(title: str | None) -> list[str]:
    """The title's words with edge punctuation stripped and camera file names removed."""
    if not title or is_camera_name(title):
        return []
    out = []
    for token in _TOKEN.findall(title):
        word = token.strip(_EDGE_PUNCT)
        if word and not is_camera_name(word):
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
