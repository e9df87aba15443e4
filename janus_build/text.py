"""Caption normalisation and WordNet noun lemmatisation, as subset matching sees text.

The lemmatiser reproduces NLTK's ``WordNetLemmatizer().lemmatize(word)`` (noun morphology,
WordNet 3.0) exactly, from a lemma table generated once from WordNet and shipped with the
package (``scripts/generate_classnames.py``): no 3.5 s / 200 MB corpus load per process.
``tests/test_text.py`` checks it against NLTK itself when the corpus is installed.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from functools import lru_cache

from janus_build.resources import package_data

# NLTK's noun substitutions (WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS["n"]), in order.
_NOUN_SUBSTITUTIONS = (
    ("s", ""),
    ("ses", "s"),
    ("ves", "f"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
)

# --- normalisation -------------------------------------------------------------------------
# Text is Unicode-normalised (NFKC: composed accents, full-width letters as ASCII, ligatures
# split) before lower-casing, so "consomme\u0301", "\uff2c\uff49\uff4f\uff4e" and "consommé" read alike.
UNICODE_FORM = "NFKC"
# HTML tags (LAION alt-texts carry <a href=...>), entities, and URLs go first, whole. A tag is
# only what looks like one: "<" then a letter (or "/letter", "!"), so "I <3 my goldfish > my
# cat" keeps its goldfish.
# (No counted repetition: RE2 is linear anyway, and "{0,1000}" made its compile cost 50 ms a batch.)
HTML_TAG_PATTERN = r"</?[a-z][a-z0-9:-]*(?:[\s/][^<>]*)?>|<![^<>]*>"
HTML_ENTITY_PATTERN = r"&(?:[a-z]{2,8}|#[0-9]{1,7}|#x[0-9a-f]{1,6});"
# A URL runs over the characters URLs hold unescaped, less the ones that end it in prose
# ("," "'" "(" ")" "[" "]"): "photo:https://x.com/a,lion" keeps "lion".
URL_PATTERN = r"(?:https?://|ftp://|www\.)[a-z0-9\-._~:/?#@!$&*+;=%]*"
# Apostrophes are deleted so possessives join their noun ("dog's" -> "dogs" -> "dog").
APOSTROPHE_PATTERN = "['\u2019\u2018`\u00b4\u02bc]"  # literal characters: valid in Python re and RE2
# Everything that is not a letter or a digit separates tokens.
SEPARATOR_PATTERN = r"[^\p{L}\p{N}]+"
ASCII_SEPARATOR_PATTERN = r"[^a-z0-9]+"  # the same on lower-cased ASCII text (compiles 15x faster)

_HTML_TAG = re.compile(HTML_TAG_PATTERN)
_HTML_ENTITY = re.compile(HTML_ENTITY_PATTERN)
_URL = re.compile(URL_PATTERN)
_APOSTROPHE = re.compile(APOSTROPHE_PATTERN)
_SEPARATOR = re.compile(r"[\W_]+")  # Python's \w is letters, digits and '_': the same set without '_'


def normalize(text: str) -> list[str]:
    """NFKC-normalise and lower-case ``text``, strip HTML and URLs, delete apostrophes, split on the rest.

    This is the reference (per-string) form of what :mod:`janus_build.match` does on whole
    Arrow columns; the two are tested to agree.
    """
    text = unicodedata.normalize(UNICODE_FORM, text).lower()
    text = _HTML_TAG.sub(" ", text)
    text = _HTML_ENTITY.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _APOSTROPHE.sub("", text)
    return _SEPARATOR.sub(" ", text).split()


# --- lemmatisation -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _noun_lemmas() -> frozenset[str]:
    with gzip.open(package_data("wordnet_noun_lemmas.txt.gz"), "rt", encoding="utf-8") as handle:
        return frozenset(line for line in handle.read().split("\n") if line.strip())  # 5x a line loop


@lru_cache(maxsize=1)
def _noun_exceptions() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    with gzip.open(package_data("wordnet_noun_exceptions.txt.gz"), "rt", encoding="utf-8") as handle:
        for line in handle:
            form, _, bases = line.rstrip("\n").partition("\t")
            if form:
                table[form] = tuple(bases.split())
    return table


class Lemmatizer:
    """WordNet noun lemmatiser with a per-instance cache (callable: ``lemmatizer("geese")``)."""

    def __init__(self) -> None:
        self._lemmas = _noun_lemmas()
        self._exceptions = _noun_exceptions()
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        cached = self._cache.get(word)
        if cached is None:
            cached = self._cache[word] = self._lemmatize(word)
        return cached

    def _lemmatize(self, word: str) -> str:
        if word in self._exceptions:
            forms = list(self._exceptions[word])
        else:
            forms = [word[: -len(old)] + new for old, new in _NOUN_SUBSTITUTIONS if word.endswith(old)]
        found = [f for f in dict.fromkeys([word, *forms]) if f in self._lemmas]
        return min(found, key=len) if found else word

    def is_lemma(self, word: str) -> bool:
        """True when ``word`` is itself a WordNet noun lemma (e.g. "shorts", "glasses")."""
        return word in self._lemmas

    def tokens(self, text: str) -> list[str]:
        """Normalise ``text`` and lemmatise every token."""
        return [self(token) for token in normalize(text)]


def nltk_lemmatizer():  # pragma: no cover - exercised only where the corpus is installed
    """NLTK's own WordNetLemmatizer, or a clear error saying how to install WordNet."""
    from janus_build.errors import MissingResourceError

    try:
        from nltk.corpus import wordnet
        from nltk.stem import WordNetLemmatizer

        wordnet.ensure_loaded()
    except LookupError:
        raise MissingResourceError(
            "NLTK's WordNet corpus is not installed. With network: python -m nltk.downloader wordnet; "
            "offline on Debian/Ubuntu: bash scripts/install_wordnet.sh (wordnet-base + wordnet-sense-index)"
        ) from None
    return WordNetLemmatizer()
