"""Spell checking BLIP captions: fix word fragments, never class names, title words or real words.

BLIP's word-piece decoder sometimes drops a word's last pieces ("a gold finc on a branc"),
repeats a letter ("sittting") or glues a stray piece on ("birdj"). :class:`SpellFixer`
corrects such tokens with SymSpell (symspellpy) under rules that favour leaving a token alone
over turning it into a wrong real word (the old pyspellchecker rule, "most frequent word within
two edits", gave "a gold find on a brand", ``selfie`` -> ``selfish``, ``tshirt`` -> ``shirt``):

* **Known words are never touched.** Known: symspellpy's English frequency dictionary (82,765
  words), WordNet's noun lemmas (shipped for matching), the words of every class name and
  matching term of the term set, and ``janus_build/data/caption_words.txt`` (words BLIP writes
  that the older frequency list lacks: selfie, tshirt, ...). Title words are protected for that
  sample only, so the result does not depend on which samples came before.
* **A correction must be closer to the fragment than any other word.** Candidates (edit distance
  1; 2 for tokens of 7 letters or more) are ranked by edit distance, then by how BLIP makes
  fragments: letters repeated (``grasss``), then the word's end missing (``branc`` ->
  ``branch``), then any other edit. A single best candidate is the correction; a tie is broken
  only by context (the candidate's bigram counts with the neighbouring words, which must be at
  least :data:`CONTEXT_MARGIN` times the runner-up's: ``a birdj`` -> ``a bird``, not ``a
  birds``); otherwise the token is left as it is.
* **Compound**: an unknown token is joined to a neighbour when the joined word is a class term
  or is strictly closer than the token alone ("gold finc" -> "goldfinch").
* BLIP's artefact words (``arafed``, ...) are removed before (:mod:`.artefacts`) and never
  corrected here; tokens with digits or other non-letters, and tokens longer than
  ``max_token_length``, are left alone; corrections are cached (bounded).

docs/caption.md reports precision and recall on committed real-style BLIP outputs
(``tests/data/blip_captions.tsv``).
"""

from __future__ import annotations

import gzip
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from janus_build.caption.artefacts import is_artefact

# A word: letters, optionally with inner apostrophes or hyphens ("dog's", "t-shirt").
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_LETTERS = re.compile(r"[^\W\d_]+")
_RUNS = re.compile(r"(.)\1+")

# Error kinds, cheapest first: how BLIP's decoder makes non-words.
REPEATED, TRUNCATED, OTHER = range(3)
CONTEXT_MARGIN = 10.0  # a context tie-break needs this many times the runner-up's bigram count
DISTANCE_2_FROM = 7  # letters from which two edits are searched (short words two edits apart are rarely meant)
CLASS_TERM_COUNT = 10**9


def words_of(texts: Iterable[str]) -> set[str]:
    """Lower-cased letter runs of ``texts`` ("man-eating shark" -> man, eating, shark)."""
    out: set[str] = set()
    for text in texts:
        if text:
            out.update(m.group(0).lower() for m in _LETTERS.finditer(text))
    return out


def _symspell_file(name: str) -> str:
    import importlib.resources

    return str(importlib.resources.files("symspellpy") / name)


@lru_cache(maxsize=1)
def _base() -> Any:
    """SymSpell over the English frequency dictionary plus the caption supplement (loaded once)."""
    from symspellpy import SymSpell

    sym = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    sym.load_dictionary(_symspell_file("frequency_dictionary_en_82_765.txt"), term_index=0, count_index=1)
    for word in supplement_words():
        sym.create_dictionary_entry(word, 1_000_000)
    return sym


@lru_cache(maxsize=1)
def supplement_words() -> tuple[str, ...]:
    """``janus_build/data/caption_words.txt``: words BLIP writes that the frequency list lacks."""
    from janus_build.resources import package_data

    lines = package_data("caption_words.txt").read_text(encoding="utf-8").splitlines()
    return tuple(w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith("#"))


@lru_cache(maxsize=1)
def _nouns() -> frozenset[str]:
    """WordNet's single-word noun lemmas (known words, not correction targets)."""
    from janus_build.resources import package_data

    with gzip.open(package_data("wordnet_noun_lemmas.txt.gz"), "rt", encoding="utf-8") as handle:
        return frozenset(w for w in (line.strip().lower() for line in handle) if w.isalpha())


@lru_cache(maxsize=1)
def _bigrams() -> dict[tuple[str, str], int]:
    """symspellpy's English bigram counts (loaded on the first tie)."""
    counts: dict[tuple[str, str], int] = {}
    with open(_symspell_file("frequency_bigramdictionary_en_243_342.txt"), encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3:
                counts[(parts[0], parts[1])] = int(parts[2])
    return counts


def error_kind(token: str, candidate: str) -> int:
    """How ``candidate`` became ``token`` in BLIP's terms (see the module docstring)."""
    if _RUNS.sub(r"\1", token) == _RUNS.sub(r"\1", candidate):
        return REPEATED
    if candidate.startswith(token):
        return TRUNCATED
    return OTHER


@dataclass(frozen=True)
class _Tokens:
    """A caption's word matches, with what lies between them."""

    matches: list[re.Match[str]]
    text: str

    def joinable(self, i: int, j: int) -> bool:
        """True when words ``i`` and ``j`` (adjacent) are letters only, separated by spaces only."""
        a, b = self.matches[min(i, j)], self.matches[max(i, j)]
        return a.group(0).isalpha() and b.group(0).isalpha() and not self.text[a.end() : b.start()].strip()


class SpellFixer:
    """Corrects BLIP fragments in captions under the rules of this module.

    Args:
        protected: words never corrected and added to the dictionary (class names and terms).
        long_token_length: from this many letters on, search edit distance 1 only.
        max_token_length: longer tokens are left as they are.
        cache_size: corrections remembered (least recently used are dropped first).
    """

    def __init__(
        self,
        protected: Iterable[str] = (),
        *,
        long_token_length: int = 16,
        max_token_length: int = 24,
        cache_size: int = 100_000,
    ) -> None:
        from symspellpy import SymSpell

        self.protected = frozenset(w.lower() for w in protected if w)
        self._base = _base()
        self._terms = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word in sorted(self.protected):
            self._terms.create_dictionary_entry(word, CLASS_TERM_COUNT)
        self._nouns = _nouns()
        self.long_token_length = long_token_length
        self.max_token_length = max_token_length
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0

    # --- words ---------------------------------------------------------------------------
    def known(self, word: str) -> bool:
        """True for a word of any dictionary (never corrected)."""
        return (
            len(word) < 2
            or word in self.protected
            or word in self._base.words
            or word in self._nouns
            or word in self._terms.words
        )

    def _correctable(self, word: str) -> bool:
        return word.isalpha() and len(word) <= self.max_token_length and not self.known(word) and not is_artefact(word)

    def _candidates(self, word: str, max_distance: int) -> dict[str, int]:
        from symspellpy import Verbosity

        found: dict[str, int] = {}
        for sym in (self._base, self._terms):
            for item in sym.lookup(word, Verbosity.ALL, max_edit_distance=max_distance):
                found[item.term] = min(item.distance, found.get(item.term, max_distance + 1))
        return found

    def _max_distance(self, word: str) -> int:
        return 2 if DISTANCE_2_FROM <= len(word) < self.long_token_length else 1

    def best(self, word: str) -> tuple[str, ...]:
        """The candidates closest to ``word`` (several: a tie; none: nothing close). Cached."""
        cached = self._cache.get(word)
        if cached is not None:
            self.cache_hits += 1
            self._cache.move_to_end(word)
            return cached
        self.cache_misses += 1
        result: tuple[str, ...] = ()
        if self._correctable(word):
            found = self._candidates(word, self._max_distance(word))
            ranked = sorted((distance, error_kind(word, term), term) for term, distance in found.items())
            if ranked:
                top = ranked[0][:2]
                result = tuple(term for distance, kind, term in ranked if (distance, kind) == top)
        self._cache[word] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def correct(self, word: str, before: str | None = None, after: str | None = None) -> str:
        """The correction of one lower-case word (itself when known, unfixable or ambiguous)."""
        best = self.best(word)
        if len(best) == 1:
            return best[0]
        if len(best) > 1:
            return _by_context(best, before, after) or word
        return word

    def _joined(self, left: str, right: str, alone: int | None) -> str | None:
        """The word ``left + right`` is closest to, when joining beats the unknown token alone."""
        joined = left + right
        if self.known(joined) and joined.isalpha():
            return joined
        found = self._candidates(joined, 1)
        if not found:
            return None
        distance = min(found.values())
        closest = [t for t, d in found.items() if d == distance]
        if len(closest) != 1:
            return None
        term = closest[0]
        if term in self.protected or alone is None or distance < alone:
            return term
        return None

    # --- captions -------------------------------------------------------------------------
    def fix(self, caption: str, title: str | None = None) -> str:
        """Return ``caption`` with BLIP's fragments corrected; title words are left alone."""
        if not caption:
            return caption
        keep = words_of([title]) if title else frozenset()
        tokens = _Tokens(list(_WORD.finditer(caption)), caption)
        words = [m.group(0).lower() for m in tokens.matches]
        edits: dict[int, tuple[int, str]] = {}  # first word index -> (words replaced, replacement)
        i = 0
        while i < len(words):
            word = words[i]
            if word in keep or not self._correctable(word):
                i += 1
                continue
            merged = self._merge(tokens, words, i, keep)
            if merged is not None:
                start, replacement = merged
                edits.pop(start, None)
                edits[start] = (2, replacement)
                i = start + 2
                continue
            before = words[i - 1] if i > 0 else None
            after = words[i + 1] if i + 1 < len(words) else None
            fixed = self.correct(word, before, after)
            if fixed != word:
                edits[i] = (1, fixed)
            i += 1
        return _apply(caption, tokens.matches, edits)

    def _merge(self, tokens: _Tokens, words: list[str], i: int, keep: Any) -> tuple[int, str] | None:
        """``(first index, word)`` when word ``i`` joins a neighbour (see the module docstring)."""
        best = self.best(words[i])
        alone = None
        if best:
            alone = min(self._candidates(words[i], self._max_distance(words[i])).get(t, 3) for t in best)
        for j in (i - 1, i + 1):
            if not 0 <= j < len(words) or words[j] in keep or not tokens.joinable(i, j):
                continue
            left, right = (words[j], words[i]) if j < i else (words[i], words[j])
            joined = self._joined(left, right, alone)
            if joined is not None:
                return min(i, j), joined
        return None


def _by_context(candidates: tuple[str, ...], before: str | None, after: str | None) -> str | None:
    """The candidate the neighbouring words clearly favour (bigram counts), or None."""
    if before is None and after is None:
        return None
    bigrams = _bigrams()
    scores = sorted(
        ((bigrams.get((before, c), 0) if before else 0) + (bigrams.get((c, after), 0) if after else 0), c)
        for c in candidates
    )
    top, runner_up = scores[-1][0], scores[-2][0]
    if top > 0 and top >= CONTEXT_MARGIN * runner_up:
        return scores[-1][1]
    return None


def _match_case(original: str, fixed: str) -> str:
    return fixed.capitalize() if original[:1].isupper() else fixed


def _apply(caption: str, matches: list[re.Match[str]], edits: dict[int, tuple[int, str]]) -> str:
    if not edits:
        return caption
    out, position = [], 0
    for start in sorted(edits):
        count, replacement = edits[start]
        first, last = matches[start], matches[start + count - 1]
        out.append(caption[position : first.start()])
        out.append(_match_case(first.group(0), replacement))
        position = last.end()
    out.append(caption[position:])
    return "".join(out)
