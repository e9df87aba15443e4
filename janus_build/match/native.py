"""The compiled tokeniser of ``_tokens.c`` (ctypes), when the build made it; else None.

``pip install`` compiles ``_tokens.c`` with the system C compiler (``hatch_build.py``); where
there is none, or ``JANUS_NATIVE=0`` is set, :func:`load` returns None and the matcher uses its
numpy + Arrow path, which gives the same ids (``tests/test_match_native.py``) at about a third
of the speed on ASCII captions (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_tokens.so")
FNV_OFFSET, FNV_PRIME, MASK64 = 14695981039346656037, 1099511628211, (1 << 64) - 1
NON_ASCII, MARKUP = 1, 2  # the row flags of _tokens.c
_POINTER = np.ctypeslib.ndpointer


@functools.lru_cache(maxsize=1)
def load() -> Any:
    """The loaded library's ``janus_ascii_token_ids``, or None (not built, or ``JANUS_NATIVE=0``)."""
    if os.environ.get("JANUS_NATIVE", "1") == "0" or not LIBRARY.is_file():
        return None
    try:
        function = ctypes.CDLL(os.fspath(LIBRARY)).janus_ascii_token_ids
    except (OSError, AttributeError) as exc:  # built for another platform, or damaged
        log.warning("%s: cannot be loaded (%s); matching without it", LIBRARY, exc)
        return None
    i64, u8 = _POINTER(np.int64, flags="C"), _POINTER(np.uint8, flags="C")
    function.restype = ctypes.c_int64
    function.argtypes = [u8, i64, ctypes.c_int64, i64, ctypes.c_int64, u8, i64, i64, i64, i64, u8, ctypes.c_int64]
    return function


def fnv1a(data: bytes) -> int:
    """64-bit FNV-1a, as ``_tokens.c`` hashes a token."""
    value = FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * FNV_PRIME) & MASK64
    return value


@dataclass(frozen=True)
class TokenTable:
    """Candidate tokens and their term-word ids as ``_tokens.c`` reads them."""

    slots: np.ndarray  # int64, a power of two long: candidate index, or -1 (empty)
    data: np.ndarray  # uint8: the candidates' bytes, one after another
    offsets: np.ndarray  # int64: candidate k is data[offsets[k]:offsets[k + 1]]
    ids: np.ndarray  # int64: candidate k's term-word id

    @classmethod
    def build(cls, tokens: list[str], ids: np.ndarray) -> TokenTable:
        encoded = [token.encode("ascii") for token in tokens]
        size = 1 << max(4, (4 * len(encoded)).bit_length())  # at most a quarter full
        slots = np.full(size, -1, dtype=np.int64)
        for k, token in enumerate(encoded):
            slot = fnv1a(token) & (size - 1)
            while slots[slot] >= 0:
                slot = (slot + 1) & (size - 1)
            slots[slot] = k
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(token) for token in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8).copy()
        return cls(slots, data, offsets, np.ascontiguousarray(ids, dtype=np.int64))


def ascii_token_ids(
    function: Any, texts: Any, table: TokenTable, check_markup: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Term-word ids and rows of the tokens of every plain-ASCII row of a string array.

    Returns ``(ids, rows, flags)``: ``flags`` (one per row) is ``NON_ASCII`` or ``MARKUP``
    (unless ``check_markup`` is off) for the rows whose tokens are not in ``ids``, else 0.
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
    ids, rows = np.empty(room, dtype=np.int64), np.empty(room, dtype=np.int64)
    flags = np.zeros(len(texts), dtype=np.uint8)
    n = function(
        np.ascontiguousarray(data),
        offsets,
        len(texts),
        table.slots,
        len(table.slots),
        table.data,
        table.offsets,
        table.ids,
        ids,
        rows,
        flags,
        int(check_markup),
    )
    return ids[:n], rows[:n], flags
