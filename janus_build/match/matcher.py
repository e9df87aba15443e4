"""Vectorised n-gram subset matching of caption columns against a table of class terms.

The per-caption semantics are written down in docs/matching.md; :func:`match_captions_reference`
is a plain-Python statement of them that the vectorised :class:`Matcher` is tested against.

How the vectorised path works, per Arrow batch:
1. normalise the whole column in Arrow compute (NFKC, lower-case; HTML tags, entities and URLs out;
   apostrophes deleted; everything but letters and digits a separator) and split into tokens;
2. dictionary-encode the flattened tokens, lemmatise each *distinct* token once (cached across
   batches) and map it to the id of the term word it is, or 0;
3. build every 1..max_ngram-gram whose tokens are all term words as an integer key and look
   the keys up in sorted arrays with numpy;
4. order the hits by (caption, position, longest first), keep the longest hit at each position
   and drop hits inside an earlier kept one, then derive labels, labels and matched_terms.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from janus_build.match.config import STRATEGIES
from janus_build.schemas import MAX_LABELS, NO_LABEL
from janus_build.text import (
    APOSTROPHE_PATTERN,
    HTML_ENTITY_PATTERN,
    HTML_TAG_PATTERN,
    SEPARATOR_PATTERN,
    UNICODE_FORM,
    URL_PATTERN,
    Lemmatizer,
    normalize,
)

log = logging.getLogger(__name__)

MAX_MATCHED_TERMS = 100  # matched_terms is capped per caption (labels is capped at MAX_LABELS)


@dataclass(frozen=True)
class MatchResult:
    """Per-caption results of one batch (Arrow arrays aligned with the input rows)."""

    label: pa.Array  # int32, NO_LABEL when none
    labels: pa.Array  # list<int32>
    matched_terms: pa.Array  # list<string>


class TermTable:
    """Matching terms of a label set, normalised and lemmatised like captions.

    Args:
        terms: class id -> raw terms, in label-set order (that order breaks ties when one term
            names several classes, e.g. "crane" the bird and the machine).
        max_ngram: the longest n-gram matched; longer terms cannot match and are reported.
    """

    def __init__(
        self, terms: Mapping[int, Sequence[str]], max_ngram: int = 3, lemmatizer: Lemmatizer | None = None
    ) -> None:
        if max_ngram < 1:
            raise ValueError("max_ngram must be >= 1")
        self.max_ngram = max_ngram
        self.lemmatizer = lemmatizer or Lemmatizer()
        self.class_order = {class_id: rank for rank, class_id in enumerate(terms)}
        self.word_ids: dict[str, int] = {}  # lemma -> id >= 1
        self.term_text: list[str] = []  # term index -> display text
        self.term_classes: list[tuple[int, ...]] = []  # term index -> classes in label-set order
        self.too_long: list[tuple[int, str]] = []
        # Plural-only nouns in terms ("shorts", "jeans", "sunglasses", "swim trunks") are WordNet
        # lemmas of their own whose lemmatised form is another word ("short", "trunk"): they
        # match by their surface form only, or "short sleeve" would be labelled swim trunks.
        self.surface_words: set[str] = set()
        by_tokens: dict[tuple[str, ...], int] = {}
        for class_id, raw_terms in terms.items():
            for raw in expand_term(raw_terms):
                tokens = tuple(self._term_word(t) for t in normalize(raw))
                if not tokens:
                    continue
                if len(tokens) > max_ngram:
                    self.too_long.append((class_id, raw))
                    continue
                index = by_tokens.get(tokens)
                if index is None:
                    index = by_tokens[tokens] = len(self.term_text)
                    self.term_text.append(" ".join(tokens))
                    self.term_classes.append(())
                if class_id not in self.term_classes[index]:
                    self.term_classes[index] = tuple(
                        sorted((*self.term_classes[index], class_id), key=self.class_order.__getitem__)
                    )
                for token in tokens:
                    self.word_ids.setdefault(token, len(self.word_ids) + 1)
        if self.too_long:
            log.info(
                "%d term(s) have more than %d words and cannot match (raise --max-ngram): %s",
                len(self.too_long),
                max_ngram,
                ", ".join(repr(t) for _, t in self.too_long[:5]),
            )
        self.by_tokens = by_tokens
        self.base = len(self.word_ids) + 1
        if self.base**max_ngram >= 2**62:
            raise ValueError("too many distinct term words for integer n-gram keys at this --max-ngram")
        # Per n: sorted integer keys and the term index of each.
        self._keys: list[np.ndarray] = []
        self._key_terms: list[np.ndarray] = []
        for n in range(1, max_ngram + 1):
            items = sorted(
                (self._key(tuple(self.word_ids[t] for t in toks)), idx)
                for toks, idx in by_tokens.items()
                if len(toks) == n
            )
            self._keys.append(np.array([k for k, _ in items], dtype=np.int64))
            self._key_terms.append(np.array([i for _, i in items], dtype=np.int64))
        self._token_cache: dict[str, int] = {}
        self._build_candidates()
        self.term_strings = strings(self.term_text)
        self._term_class_offsets = np.cumsum([0] + [len(c) for c in self.term_classes]).astype(np.int64)
        self._term_class_values = np.array([c for cs in self.term_classes for c in cs], dtype=np.int64)

    def _build_candidates(self) -> None:
        """Every caption token that can map to a term word, with its word id.

        A token's lemma is itself, one of its WordNet exception bases, or one suffix rule away
        (janus_build.text), so inverting those rules on the term words gives a finite superset of
        the tokens that can match; each candidate's id is then computed exactly by
        :meth:`word_id`. Tokens outside the set are no term word: the vectorised path looks
        them up in Arrow (``index_in``) and never lemmatises them in Python.
        """
        from janus_build.text import _NOUN_SUBSTITUTIONS, _noun_exceptions

        inverse_exceptions: dict[str, list[str]] = {}
        for form, bases in _noun_exceptions().items():
            for base in bases:
                inverse_exceptions.setdefault(base, []).append(form)
        candidates: set[str] = set()
        for word in self.word_ids:
            candidates.add(word)
            candidates.update(inverse_exceptions.get(word, ()))
            for old, new in _NOUN_SUBSTITUTIONS:
                if word.endswith(new):
                    candidates.add(word[: len(word) - len(new)] + old)
        ordered = sorted(candidates)
        ids = [self.word_id(token) for token in ordered]
        keep = [i for i, word_id in enumerate(ids) if word_id]
        self.candidate_tokens = strings([ordered[i] for i in keep])
        # index -1 (not a candidate) maps to 0 through the extra last slot
        self.candidate_ids = np.array([ids[i] for i in keep] + [0], dtype=np.int64)

    @functools.cached_property
    def native_table(self) -> Any:
        """The candidate tokens as ``_tokens.c`` reads them."""
        from janus_build.match.native import TokenTable

        return TokenTable.build(self.candidate_tokens.to_pylist(), self.candidate_ids[:-1])

    @functools.cached_property
    def native_ngrams(self) -> Any:
        """The n-gram keys as ``_tokens.c`` reads them; None when it cannot resolve this many words."""
        from janus_build.match.native import MAX_NGRAM, NgramTable

        if self.max_ngram > MAX_NGRAM:
            return None
        keys, terms = np.concatenate(self._keys), np.concatenate(self._key_terms)
        return NgramTable.build(keys, terms, self.base, self.max_ngram)

    def token_ids(self, tokens: pa.Array) -> np.ndarray:
        """Term-word id of every token of a flat string array (0: no term word)."""
        index = pc.fill_null(pc.index_in(tokens, value_set=self.candidate_tokens), lit(-1, pa.int32()))
        return self.candidate_ids[numbers(index)]

    def _term_word(self, token: str) -> str:
        lemma = self.lemmatizer(token)
        if lemma != token and self.lemmatizer.is_lemma(token):
            self.surface_words.add(token)
            return token
        return lemma

    def word_key(self, token: str) -> str:
        """The form of a caption token that terms are compared with (its lemma, or itself)."""
        return token if token in self.surface_words else self.lemmatizer(token)

    def _key(self, ids: Sequence[int]) -> int:
        key = 0
        for word_id in ids:
            key = key * self.base + word_id
        return key

    def word_id(self, token: str) -> int:
        """The term-word id of a caption token after lemmatisation (0 when it is no term word)."""
        cached = self._token_cache.get(token)
        if cached is None:
            cached = self._token_cache[token] = self.word_ids.get(self.word_key(token), 0)
        return cached

    def lookup(self, n: int, keys: np.ndarray) -> np.ndarray:
        """Term index of each n-gram key, or -1."""
        table = self._keys[n - 1]
        if not len(table):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.searchsorted(table, keys)
        pos_clipped = np.minimum(pos, len(table) - 1)
        found = table[pos_clipped] == keys
        return np.where(found, self._key_terms[n - 1][pos_clipped], -1)


_PARENTHETICAL = re.compile(r"\s*\([^()]*\)")


def expand_term(raw_terms: Sequence[str]) -> list[str]:
    """Split class names into matchable terms.

    OpenAI's names carry disambiguations and alternatives that captions never contain:
    "kite (bird of prey)" -> "kite"; "baluster / handrail" -> "baluster", "handrail".
    """
    out: list[str] = []
    for raw in raw_terms:
        for part in _PARENTHETICAL.sub("", raw).split(" / "):
            if part.strip():
                out.append(part.strip())
    return list(dict.fromkeys(out))


_MARKUP_PATTERN = f"{HTML_TAG_PATTERN}|{HTML_ENTITY_PATTERN}|{URL_PATTERN}"
_MARKUP_HINT = r"[<&]|://|www\."  # a row without these holds no tag, entity or URL


UNICODE_SEPARATOR_ROWS = 2048  # fewer non-ASCII rows than this: split them in Python (no RE2 compile)

_DELETED_BYTES = (ord("'"), ord("`"))  # the ASCII apostrophes


def tokenize_column(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Arrow/numpy form of :func:`janus_build.text.normalize`: every caption's tokens, flat, and
    the row of each token. A row's tokens are contiguous and in order; rows are not sorted.

    Cost shapes this (docs/benchmarks.md has the profile): a regex replace of every separator
    was 40 % of the stage, so ASCII rows (most captions) are cut into tokens over their bytes in
    numpy (a table lookup and a few cumulative sums), and only non-ASCII rows use the regexes.
    RE2 compiles a pattern on every call and the Unicode separator class costs ~10 ms, so a few
    non-ASCII rows go through Python's ``re`` instead.
    """
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(texts), TRUE))
    any_unicode = pc.any(non_ascii).as_py()
    if any_unicode:  # NFKC is the identity on ASCII
        texts = _on_rows(texts, non_ascii, _normalize_unicode)
    texts = pc.utf8_lower(texts)
    # HTML and URLs are rare (a few % of LAION rows): run their regex on those rows only
    markup = pc.fill_null(pc.match_substring_regex(texts, _MARKUP_HINT), FALSE)
    if pc.any(markup).as_py():
        texts = _on_rows(texts, markup, lambda t: pc.replace_substring_regex(t, _MARKUP_PATTERN, " "))
    if not any_unicode:
        return _ascii_tokens(texts, np.arange(len(texts), dtype=np.int64))
    mask = bools(non_ascii)
    ascii_rows, unicode_rows = np.flatnonzero(~mask), np.flatnonzero(mask)
    flat_a, parents_a = _ascii_tokens(_take(texts, ascii_rows), ascii_rows)
    flat_u, parents_u = _unicode_tokens(_take(texts, unicode_rows), unicode_rows)
    return pa.concat_arrays([flat_a, flat_u]), np.concatenate([parents_a, parents_u])


def _normalize_unicode(texts: pa.Array) -> pa.Array:
    # NFKC; and the one apostrophe that is a letter (U+02BC) made a plain one
    return pc.replace_substring(pc.utf8_normalize(texts, form=UNICODE_FORM), "\u02bc", "'")


def _ascii_tokens(texts: pa.Array, rows: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Tokens of lower-cased ASCII rows, cut over their bytes: runs of a-z0-9, apostrophes deleted."""
    if texts.null_count:
        texts = pc.fill_null(texts, lit("", pa.string()))
    _, offsets_buffer, data_buffer = texts.buffers()
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]] if data_buffer else np.zeros(0, np.uint8)
    )
    offsets -= offsets[0]
    deleted = np.flatnonzero((data == _DELETED_BYTES[0]) | (data == _DELETED_BYTES[1]))
    if len(deleted):  # apostrophes out: "dog's" -> "dogs"
        offsets -= np.searchsorted(deleted, offsets)
        data = np.delete(data, deleted)
    # a-z or 0-9: uint8 arithmetic wraps, so one subtraction and one comparison per range
    token = ((data - np.uint8(97)) < 26) | ((data - np.uint8(48)) < 10)
    starts, ends = token.copy(), token.copy()
    starts[1:] &= ~token[:-1]
    ends[:-1] &= ~token[1:]
    first, last = offsets[:-1], offsets[1:] - 1  # a token never runs over a row boundary
    nonempty = first <= last
    starts[first[nonempty]] = token[first[nonempty]]
    ends[last[nonempty]] = token[last[nonempty]]
    starts, ends = np.flatnonzero(starts), np.flatnonzero(ends)
    token_offsets = np.zeros(len(starts) + 1, dtype=np.int32)
    np.cumsum(ends - starts + 1, out=token_offsets[1:])
    flat = pa.StringArray.from_buffers(len(starts), pa.py_buffer(token_offsets), pa.py_buffer(data[token]))
    per_row = np.diff(np.searchsorted(starts, offsets))
    return flat, np.repeat(rows, per_row)


def _unicode_tokens(texts: pa.Array, rows: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Tokens of rows holding non-ASCII text: apostrophes deleted, anything but letters and digits splits."""
    texts = pc.replace_substring_regex(texts, APOSTROPHE_PATTERN, "")
    if len(texts) >= UNICODE_SEPARATOR_ROWS:
        texts = pc.replace_substring_regex(texts, SEPARATOR_PATTERN, " ")
    else:
        from janus_build.text import _SEPARATOR

        texts = strings([None if t is None else _SEPARATOR.sub(" ", t) for t in texts.to_pylist()])
    words = pc.utf8_split_whitespace(texts)
    flat = pc.list_flatten(words)
    parents = rows[numbers(pc.list_parent_indices(words))]
    nonempty = bools(pc.greater(pc.utf8_length(flat), lit(0, pa.int32())))  # white space at either end
    return flat.filter(_mask(nonempty)), parents[nonempty]


def _mask(values: np.ndarray) -> pa.Array:
    return from_numpy(values.view(np.uint8), pa.uint8()).cast(pa.bool_())


def normalize_column(texts: pa.Array) -> pa.ListArray:
    """:func:`tokenize_column` as one list of tokens per row (null and empty rows: ``[]``)."""
    flat, parents = tokenize_column(texts)
    order = np.argsort(parents, kind="stable")
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents, minlength=len(texts)), out=offsets[1:])
    return pa.LargeListArray.from_arrays(from_numpy(offsets, pa.int64()), flat.take(from_numpy(order, pa.int64())))


def _by_row(ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens given in runs sorted by row (each row's in order) sorted by row: a stable merge."""
    if len(rows) > 1 and (rows[1:] < rows[:-1]).any():
        order = np.argsort(rows, kind="stable")
        return ids[order], rows[order]
    return ids, rows


def _take(texts: pa.Array, rows: np.ndarray) -> pa.Array:
    return texts.take(from_numpy(rows, pa.int64()))


def _on_rows(texts: pa.Array, mask: pa.Array, function) -> pa.Array:
    """``function`` applied to the rows of ``texts`` where ``mask`` is true; the rest unchanged."""
    return pc.replace_with_mask(texts, mask, function(pc.filter(texts, mask)))


class Matcher:
    """Label caption columns with a :class:`TermTable`."""

    def __init__(self, table: TermTable) -> None:
        self.table = table

    def warm(self) -> Matcher:
        """Load the compiled matcher and build its tables now rather than on the first caption.

        Called before worker processes are forked, so each inherits them instead of building
        its own (about 8 ms of each worker's first shard). Returns self.
        """
        from janus_build.match import native

        if native.load() is not None:  # both native paths read these cached properties
            self.table.native_table, self.table.native_ngrams  # noqa: B018
        return self

    # -- the vectorised path ----------------------------------------------------------------
    def match(self, texts: pa.Array) -> MatchResult:
        """Match every caption of a string array (nulls and empties match nothing)."""
        n_rows = len(texts)
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        if not pa.types.is_string(texts.type):  # large_string, string_view
            texts = texts.cast(pa.string())
        from janus_build.match import native

        library = native.load()
        if library is not None and self.table.native_ngrams is not None:
            rows, terms = self._native_hits(library, texts)
            return self._build(n_rows, rows, terms)
        ids, parents = self.token_ids(texts)
        return self._resolve(n_rows, *_by_row(ids, parents))

    def _native_hits(self, library: Any, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """The n-gram hits (rows, terms) of every caption, in caption order, by ``_tokens.c``;
        the rows it leaves out go through :func:`tokenize_column` first."""
        from janus_build.match import native

        tokens, ngrams = self.table.native_table, self.table.native_ngrams
        rows, terms, flags = native.match_rows(library, texts, tokens, ngrams)
        if not flags.any():
            return rows, terms
        more_rows, more_terms = native.resolve(library, *self._left_out(texts, flags), ngrams)
        rows, terms = np.concatenate([rows, more_rows]), np.concatenate([terms, more_terms])
        order = np.argsort(rows, kind="stable")  # each row's hits come from one part, in order
        return rows[order], terms[order]

    def token_ids(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Term-word id (0: none) and row of every token of every caption; each row's in order.

        The rows ``_tokens.c`` can cut go through it when it was built
        (:mod:`janus_build.match.native`); the others, or all rows without it, through
        :func:`tokenize_column` and the Arrow lookup. Both give the same ids.
        """
        from janus_build.match import native

        library = native.load()
        if library is None:
            return self._general_token_ids(texts)
        ids, rows, flags = native.match_rows(library, texts, self.table.native_table, None)
        if not flags.any():
            return ids, rows
        more_ids, more_rows = self._left_out(texts, flags)
        return np.concatenate([ids, more_ids]), np.concatenate([rows, more_rows])

    def _left_out(self, texts: pa.Array, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ids and rows (of ``texts``, each row's tokens in order) of the rows ``_tokens.c`` flagged."""
        other = np.flatnonzero(flags)
        ids, rows = _by_row(*self._general_token_ids(_take(texts, other)))
        return ids, other[rows]

    def _general_token_ids(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        flat, parents = tokenize_column(texts)
        return (self.table.token_ids(flat) if len(flat) else np.zeros(0, dtype=np.int64)), parents

    def _resolve(self, n_rows: int, ids: np.ndarray, parents: np.ndarray) -> MatchResult:
        table = self.table
        n_tok = len(ids)
        term_word_at = np.flatnonzero(ids)
        hits_rows, hits_pos, hits_len, hits_term = [], [], [], []
        starts = term_word_at
        keys = ids[starts]
        for n in range(1, table.max_ngram + 1):
            if n > 1:
                # extend every (n-1)-gram of term words by the next token when it is one too
                nxt = starts + n - 1
                ok = nxt < n_tok
                starts, keys, nxt = starts[ok], keys[ok], nxt[ok]
                ok = (ids[nxt] != 0) & (parents[nxt] == parents[starts])
                starts, keys, nxt = starts[ok], keys[ok], nxt[ok]
                keys = keys * table.base + ids[nxt]
            if not len(starts):
                break
            terms = table.lookup(n, keys)
            found = terms >= 0
            hits_rows.append(parents[starts[found]])
            hits_pos.append(starts[found])
            hits_len.append(np.full(int(found.sum()), n, dtype=np.int64))
            hits_term.append(terms[found])
        if hits_rows:
            rows, pos, length, term = (np.concatenate(a) for a in (hits_rows, hits_pos, hits_len, hits_term))
        else:
            rows = pos = length = term = np.zeros(0, dtype=np.int64)
        # caption order: by (global) token position, the longest hit first at each position
        order = np.lexsort((-length, pos))
        rows, pos, length, term = rows[order], pos[order], length[order], term[order]
        if len(pos):
            first_at_pos = np.ones(len(pos), dtype=bool)
            first_at_pos[1:] = pos[1:] != pos[:-1]
            rows, pos, length, term = rows[first_at_pos], pos[first_at_pos], length[first_at_pos], term[first_at_pos]
        # drop hits inside an earlier kept hit (greedy, left to right)
        if len(pos) > 1 and (pos[1:] < pos[:-1] + length[:-1]).any():
            keep = np.ones(len(pos), dtype=bool)
            end = -1
            for i in range(len(pos)):  # positions are global, so no caption bookkeeping is needed
                if pos[i] < end:
                    keep[i] = False
                else:
                    end = pos[i] + length[i]
            rows, pos, length, term = rows[keep], pos[keep], length[keep], term[keep]
        return self._build(n_rows, rows, term)

    def _build(self, n_rows: int, rows: np.ndarray, term: np.ndarray) -> MatchResult:
        table = self.table
        # matched_terms: one entry per kept hit, capped per caption
        rank = _rank_within(rows)
        capped = rank < MAX_MATCHED_TERMS
        term_rows, term_idx = rows[capped], term[capped]
        term_offsets = _offsets(term_rows, n_rows)
        term_strings = table.term_strings
        matched_terms = pa.ListArray.from_arrays(
            from_numpy(term_offsets, pa.int32()), term_strings.take(from_numpy(term_idx, pa.int64()))
        )
        # classes of each hit in order (a term may name several classes)
        starts = table._term_class_offsets[term]
        counts = table._term_class_offsets[term + 1] - starts
        cls_rows = np.repeat(rows, counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        classes = table._term_class_values[np.repeat(starts, counts) + within]
        # distinct classes per caption, first occurrence order, capped at MAX_LABELS
        if len(classes):
            pair = cls_rows * (int(classes.max()) + 1) + classes
            _, first = np.unique(pair, return_index=True)
            first.sort()
            cls_rows, classes = cls_rows[first], classes[first]
            capped = _rank_within(cls_rows) < MAX_LABELS
            cls_rows, classes = cls_rows[capped], classes[capped]
        label_offsets = _offsets(cls_rows, n_rows)
        labels = pa.ListArray.from_arrays(from_numpy(label_offsets, pa.int32()), from_numpy(classes, pa.int32()))
        counts_per_row = np.diff(label_offsets)
        first_label = np.full(n_rows, NO_LABEL, dtype=np.int32)
        has = counts_per_row > 0
        first_label[has] = classes[label_offsets[:-1][has]]
        return MatchResult(label=from_numpy(first_label, pa.int32()), labels=labels, matched_terms=matched_terms)

    @staticmethod
    def choose(result: MatchResult, strategy: str) -> pa.Array:
        """The ``label`` column under ``strategy``: sc and mc take the first class; strict only a sole one."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}")
        if strategy != "strict":
            return result.label
        sizes = pc.list_value_length(result.labels)
        return pc.if_else(pc.equal(sizes, lit(1, sizes.type)), result.label, lit(NO_LABEL, pa.int32()))

    # -- the reference path -----------------------------------------------------------------
    def match_one(self, text: str | None) -> tuple[list[int], list[str]]:
        """Plain-Python statement of the semantics for one caption: (labels, matched_terms)."""
        if not text:
            return [], []
        table = self.table
        tokens = [table.word_key(t) for t in normalize(text)]
        labels: list[int] = []
        matched: list[str] = []
        i = 0
        while i < len(tokens):
            for n in range(min(table.max_ngram, len(tokens) - i), 0, -1):
                index = table.by_tokens.get(tuple(tokens[i : i + n]))
                if index is not None:
                    if len(matched) < MAX_MATCHED_TERMS:
                        matched.append(table.term_text[index])
                    for class_id in table.term_classes[index]:
                        if class_id not in labels and len(labels) < MAX_LABELS:
                            labels.append(class_id)
                    i += n
                    break
            else:
                i += 1
        return labels, matched


def from_numpy(values: np.ndarray, type: pa.DataType) -> pa.Array:
    """A null-free primitive array over a numpy array's memory (no pandas import, see :func:`strings`)."""
    values = np.ascontiguousarray(values, dtype=type.to_pandas_dtype())
    return pa.Array.from_buffers(type, len(values), [None, pa.py_buffer(values)])


def lit(value: Any, type: pa.DataType) -> pa.Scalar:
    """A typed scalar for a compute call (a Python literal there makes pyarrow import pandas)."""
    if pa.types.is_string(type):
        return strings([value])[0]
    if pa.types.is_boolean(type):
        return pa.Array.from_buffers(type, 1, [None, pa.py_buffer(bytes([1 if value else 0]))])[0]
    return from_numpy(np.array([value]), type)[0]


TRUE, FALSE = lit(True, pa.bool_()), lit(False, pa.bool_())


def numbers(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A null-free primitive array as numpy, over its buffer (``to_numpy`` imports pandas)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    dtype = np.dtype(values.type.to_pandas_dtype())
    data = np.frombuffer(values.buffers()[1], dtype=dtype) if len(values) else np.zeros(0, dtype)
    return data[values.offset : values.offset + len(values)]


def bools(values: pa.Array) -> np.ndarray:
    """A null-free boolean array as numpy."""
    return numbers(values.cast(pa.uint8())).view(bool)


def strings(values: list) -> pa.Array:
    """A string array from a list of str/None, built from buffers: ``pa.array`` on a list (or an
    object ndarray) imports pandas (~1 s of start-up) just to ask whether it is a pandas object."""
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    valid = np.array([v is not None for v in values], dtype=bool)
    nulls = int(len(values) - valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()) if nulls else None
    return pa.LargeStringArray.from_buffers(
        len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(encoded)), bitmap, nulls
    ).cast(pa.string())


def _rank_within(rows: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) row ids."""
    if not len(rows):
        return rows
    start = np.ones(len(rows), dtype=bool)
    start[1:] = rows[1:] != rows[:-1]
    run_start = np.maximum.accumulate(np.where(start, np.arange(len(rows)), 0))
    return np.arange(len(rows)) - run_start


def _offsets(rows: np.ndarray, n_rows: int) -> np.ndarray:
    counts = np.bincount(rows, minlength=n_rows) if len(rows) else np.zeros(n_rows, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
