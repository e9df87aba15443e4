"""Spell checking BLIP captions: fix word fragments and misspellings, never class names or title words.

BLIP's word-piece decoder sometimes glues pieces into non-words ("arafed", "sittting").
:class:`SpellFixer` replaces each unknown word by pyspellchecker's most frequent candidate,
with rules that keep it correct and fast:

* words of the matching terms (every class name and synonym) are added to the dictionary, so
  "tench" or "goldfinch" are never "corrected", and can be what a fragment is corrected to;
* words of the sample's title are protected for that sample only (per-sample, so the result
  does not depend on which samples were seen before: resumed runs give the same text);
* tokens with digits or other non-letters, and tokens longer than ``max_token_length``, are
  left alone; tokens of ``long_token_length`` (12) letters or more are searched at edit distance 1
  only (distance 2 costs O(length^2 * 54^2) look-ups: about a second for a 16-letter token);
* corrections are cached (bounded), since captions repeat the same few hundred words.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable

# A word: letters, optionally with inner apostrophes or hyphens ("dog's", "t-shirt").
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_LETTERS = re.compile(r"[^\W\d_]+")


def words_of(texts: Iterable[str]) -> set[str]:
    """Lower-cased letter runs of ``texts`` ("man-eating shark" -> man, eating, shark)."""
    out: set[str] = set()
    for text in texts:
        if text:
            out.update(m.group(0).lower() for m in _LETTERS.finditer(text))
    return out


class SpellFixer:
    """Corrects unknown words of a caption with pyspellchecker, under the rules of this module.

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
        long_token_length: int = 12,
        max_token_length: int = 24,
        cache_size: int = 100_000,
    ) -> None:
        from spellchecker import SpellChecker

        self._checker = SpellChecker(language="en", distance=2)
        self.protected = frozenset(w.lower() for w in protected if w)
        if self.protected:
            self._checker.word_frequency.load_words(sorted(self.protected))
        self._dictionary = self._checker.word_frequency.dictionary
        self.long_token_length = long_token_length
        self.max_token_length = max_token_length
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0

    def fix(self, caption: str, title: str | None = None) -> str:
        """Return ``caption`` with misspelled words corrected; title words are left alone."""
        if not caption:
            return caption
        keep = words_of([title]) if title else frozenset()

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            lower = token.lower()
            if lower in keep:
                return token
            fixed = self.correct(lower)
            if fixed == lower:
                return token
            return fixed.capitalize() if token[:1].isupper() else fixed

        return _WORD.sub(replace, caption)

    def correct(self, word: str) -> str:
        """The correction of one lower-case word (the word itself when it is known or unfixable)."""
        cached = self._cache.get(word)
        if cached is not None:
            self.cache_hits += 1
            self._cache.move_to_end(word)
            return cached
        self.cache_misses += 1
        result = self._correct(word)
        self._cache[word] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _correct(self, word: str) -> str:
        checker = self._checker
        if word in self.protected or len(word) > self.max_token_length or not word.isalpha():
            return word  # hyphenated / apostrophe words: checked part by part is not worth the risk
        if word in self._dictionary or len(word) < 2:
            return word
        # Set intersections with the dictionary's keys: pyspellchecker's known() checks each
        # of the ~10^5 distance-2 strings in Python and is ~30x slower.
        edits1 = checker.edit_distance_1(word)
        candidates = edits1 & self._dictionary.keys()
        if not candidates and len(word) < self.long_token_length:
            candidates = set()
            for edit in edits1:
                candidates |= checker.edit_distance_1(edit) & self._dictionary.keys()
        if not candidates:
            return word
        # Most frequent candidate; ties broken alphabetically so the result is deterministic.
        return max(sorted(candidates), key=lambda w: self._dictionary[w])
