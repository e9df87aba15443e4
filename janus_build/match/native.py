"""The compiled matcher of ``_tokens.c`` (ctypes), when the build made it; else None.

``pip install`` generates the Unicode table (``unicode_table.py``) and compiles ``_tokens.c``
with the system C compiler (``hatch_build.py``); where there is none, or ``JANUS_NATIVE=0`` is
set, :func:`load` returns None and the matcher uses its numpy + Arrow path, which gives the
same labels (``tests/test_match_native.py``) more slowly (docs/benchmarks.md). It cuts plain
and Unicode captions into tokens, looks up their term-word ids and resolves each caption's
n-gram hits in one pass, HTML and URLs removed; the few captions it leaves out (code points
whose NFKC depends on their neighbours) go through the Arrow path, and their ids are resolved
here too.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_tokens.so")
HASH_SEED, HASH_MULTIPLIER, MASK64 = 0x9E3779B97F4A7C15, 0xFF51AFD7ED558CCD, (1 << 64) - 1
NGRAM_MULTIPLIER = 0x9E3779B97F4A7C15  # _tokens.c's lookup_ngram: slot = (key * this mod 2^64) >> 20
NON_ASCII = 1  # the row flag of _tokens.c: left to the general (Arrow) path
MAX_NGRAM = 16  # _tokens.c resolves n-grams up to this long
_POINTER = np.ctypeslib.ndpointer
_INT = ctypes.c_int64


class _OptionalInt64Array:
    """A ctypes argument type: an int64 array, or None for a NULL pointer."""

    @classmethod
    def from_param(cls, value: Any) -> Any:
        return None if value is None else _POINTER(np.int64, flags="C").from_param(value)


@dataclass(frozen=True)
class Library:
    """The compiled functions, and whether its Unicode table is this Python's (else non-ASCII
    rows go to the general path: the table must agree with ``unicodedata``, which the
    reference :func:`janus_build.text.normalize` uses)."""

    match_rows: Any
    resolve: Any
    unicode: bool


@functools.lru_cache(maxsize=1)
def load() -> Library | None:
    """The loaded library, or None (not built, or ``JANUS_NATIVE=0``)."""
    if os.environ.get("JANUS_NATIVE", "1") == "0" or not LIBRARY.is_file():
        return None
    try:
        library = ctypes.CDLL(os.fspath(LIBRARY))
        match_rows, resolve, version = library.janus_match_rows, library.janus_resolve, library.janus_unidata_version
    except (OSError, AttributeError) as exc:  # built for another platform, damaged, or an older build
        log.warning("%s: cannot be loaded (%s); matching without it", LIBRARY, exc)
        return None
    i64, u64, u8 = (_POINTER(t, flags="C") for t in (np.int64, np.uint64, np.uint8))
    optional_i64 = _OptionalInt64Array
    match_rows.restype = resolve.restype = ctypes.c_int64
    match_rows.argtypes = [u8, i64, _INT, i64, u64, _INT, u8, i64, i64, optional_i64, optional_i64]
    match_rows.argtypes += [_INT, _INT, _INT, i64, i64, _INT, u8, _INT]
    resolve.argtypes = [i64, i64, _INT, i64, i64, _INT, _INT, _INT, i64, i64]
    version.restype = ctypes.c_char_p
    table_version = version().decode()
    if table_version != unicodedata.unidata_version:
        log.info(
            "%s holds Unicode %s data, this Python %s: non-ASCII captions take the general path",
            LIBRARY,
            table_version or "no",
            unicodedata.unidata_version,
        )
    return Library(match_rows, resolve, table_version == unicodedata.unidata_version)


def token_hash(data: bytes) -> int:
    """The 64-bit hash ``_tokens.c`` gives a token (``token_hash`` there)."""
    value = HASH_SEED ^ len(data)
    for start in range(0, len(data), 8):
        value = ((value ^ int.from_bytes(data[start : start + 8], "little")) * HASH_MULTIPLIER) & MASK64
        value ^= value >> 29
    return value ^ (value >> 32)


@dataclass(frozen=True)
class TokenTable:
    """Candidate tokens and their term-word ids as ``_tokens.c`` reads them."""

    slots: np.ndarray  # int64, a power of two long: candidate index, or -1 (empty)
    hashes: np.ndarray  # uint64: the hash of the candidate in each slot
    data: np.ndarray  # uint8: the candidates' UTF-8 bytes, one after another
    offsets: np.ndarray  # int64: candidate k is data[offsets[k]:offsets[k + 1]]
    ids: np.ndarray  # int64: candidate k's term-word id

    @classmethod
    def build(cls, tokens: list[str], ids: np.ndarray) -> TokenTable:
        encoded = [token.encode("utf-8") for token in tokens]
        hashes_of = [token_hash(token) for token in encoded]
        size, at = _open_addressing(hashes_of)
        slots = np.full(size, -1, dtype=np.int64)
        hashes = np.zeros(size, dtype=np.uint64)
        slots[at], hashes[at] = np.arange(len(encoded)), np.array(hashes_of, dtype=np.uint64)
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(token) for token in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8).copy()
        return cls(slots, hashes, data, offsets, np.ascontiguousarray(ids, dtype=np.int64))


@dataclass(frozen=True)
class NgramTable:
    """The n-gram keys of a term table (``TermTable._key``) and their term index, as ``_tokens.c`` reads them."""

    keys: np.ndarray  # int64, a power of two long: a key, or -1 (empty)
    terms: np.ndarray  # int64: the term index of the key in each slot
    base: int
    max_ngram: int

    @classmethod
    def build(cls, keys: np.ndarray, terms: np.ndarray, base: int, max_ngram: int) -> NgramTable:
        if max_ngram > MAX_NGRAM:
            raise ValueError(f"the compiled matcher resolves n-grams of up to {MAX_NGRAM} words")
        size, at = _open_addressing([((key * NGRAM_MULTIPLIER) & MASK64) >> 20 for key in keys.tolist()])
        table, slot_terms = np.full(size, -1, dtype=np.int64), np.zeros(size, dtype=np.int64)
        table[at], slot_terms[at] = keys, terms
        return cls(table, slot_terms, base, max_ngram)


def _open_addressing(hashes: list[int]) -> tuple[int, list[int]]:
    """A table size (a power of two, at most a quarter full) and the slot of each item, placed in
    order by linear probing from ``hash mod size``, as ``_tokens.c`` probes."""
    size = 1 << max(4, (4 * len(hashes)).bit_length())
    taken: set[int] = set()
    at = []
    for value in hashes:
        slot = value & (size - 1)
        while slot in taken:
            slot = (slot + 1) & (size - 1)
        taken.add(slot)
        at.append(slot)
    return size, at


def match_rows(
    library: Library, texts: Any, tokens: TokenTable, ngrams: NgramTable | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens, or n-gram hits, of every row of a string array that ``_tokens.c`` can cut.

    Returns ``(a, b, flags)``: with ``ngrams``, ``a`` is the row and ``b`` the term index of every
    hit, in row order; without, ``a`` is the term-word id and ``b`` the row of every token.
    ``flags`` (one per row) is ``NON_ASCII`` for the rows left to the general path, else 0.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from janus_build.match.matcher import lit  # pa.scalar would import pandas (~0.4 s)

    if texts.null_count:
        texts = pc.fill_null(texts, lit("", pa.string()))
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(1, np.uint8)
    room = int(offsets[-1] - offsets[0]) // 2 + len(texts) + 1
    flags = np.zeros(len(texts), dtype=np.uint8)
    while True:
        a, b = np.empty(room, dtype=np.int64), np.empty(room, dtype=np.int64)
        n = library.match_rows(
            np.ascontiguousarray(data),
            offsets,
            len(texts),
            tokens.slots,
            tokens.hashes,
            len(tokens.slots),
            tokens.data,
            tokens.offsets,
            tokens.ids,
            None if ngrams is None else ngrams.keys,
            None if ngrams is None else ngrams.terms,
            0 if ngrams is None else len(ngrams.keys),
            0 if ngrams is None else ngrams.base,
            0 if ngrams is None else ngrams.max_ngram,
            a,
            b,
            room,
            flags,
            int(library.unicode),
        )
        if n == -2:
            raise MemoryError("janus match: the compiled matcher ran out of memory")
        if n >= 0:
            return a[:n], b[:n], flags
        room *= 4  # NFKC made some rows longer than their bytes


def resolve(library: Library, ids: np.ndarray, rows: np.ndarray, ngrams: NgramTable) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hits ``(rows, terms)`` of tokens given as term-word ids and rows (each row's
    tokens together, in caption order)."""
    ids, rows = np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(rows, dtype=np.int64)
    out_rows, out_terms = np.empty(len(ids), dtype=np.int64), np.empty(len(ids), dtype=np.int64)
    args = (ngrams.keys, ngrams.terms, len(ngrams.keys), ngrams.base, ngrams.max_ngram)
    n = library.resolve(ids, rows, len(ids), *args, out_rows, out_terms)
    return out_rows[:n], out_terms[:n]
