"""The JANuS authors' subset-matching algorithm, restated as a baseline for benchmarks.

This re-states the behaviour of the paper's published matching code (its cleaning rules, the
un-lemmatised class-name variants, the n-gram loop and its quirks) so that janus-build can be
measured against it for speed and agreement. It is not used by the package. It needs NLTK's
WordNet corpus (scripts/install_wordnet.sh).
"""

from __future__ import annotations

DELETE = "&<^*>\\|+=[]~`\"@/'\u00a9#)("
SPACE = ":;-_.,!?\n"


def clean(text: object) -> str:
    cleaned = str(text).lower()
    cleaned = cleaned.translate({ord(c): None for c in DELETE}).translate({ord(c): " " for c in SPACE})
    for old, new in (
        (" www ", " "),
        (" com ", " "),
        (" flickr ", " "),
        (" st ", " street "),
        (" de ", ""),
        ("http", " "),
        ("href", " "),
    ):
        cleaned = cleaned.replace(old, new)
    tokens = [t for t in cleaned.strip().split(" ") if len(t) < 30 and not t.isnumeric()]
    return " ".join(tokens)


def _reversed_joined(name: str) -> str:
    return "".join(reversed(name.split()))


def class_variants(names: list[str]) -> dict[int, list[str]]:
    """Per class: name, reversed words joined, name + 's', name without spaces, reversed without spaces."""
    out = {}
    for index, name in enumerate(names):
        n = name.lower().strip()
        out[index] = list({n, _reversed_joined(n), n + "s", n.replace(" ", ""), _reversed_joined(n).replace(" ", "")})
    return out


def subset_match(
    caption: str, names: list[str], lemmatize, ngram: int = 3, strict: bool = False, multiclass: bool = False
):
    """Label one (cleaned) caption the authors' way: returns a class index, -1, or a set (multiclass)."""
    caption = str(caption)
    if len(caption) < 5:
        return -1
    variants = class_variants(names)  # the authors rebuild this for every caption
    tokens = [lemmatize(t) for t in caption.split(" ")]
    grams = []
    for position in range(len(tokens)):
        for extra in range(ngram):
            if position + extra - 1 > len(tokens):  # never true: the last tokens repeat
                continue
            grams.append(" ".join(tokens[position : position + extra + 1]))
    matches = []
    for gram in grams:
        for index, values in enumerate(variants.values()):
            if gram in values:
                if multiclass or strict:
                    matches.append(index)
                else:
                    return index
    if not matches:
        return -1
    if strict and len(matches) != 1:
        return -1
    if multiclass:
        return set(matches)
    return matches[0]
