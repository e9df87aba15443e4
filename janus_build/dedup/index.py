"""A multi-index hash (Norouzi et al., CVPR 2012) over the evaluation images' pHashes.

Every entry is one view of one evaluation image: its pHash, dHash, image number and view
number. The 64-bit pHash is split into ``m`` bands of at least log2(N) bits (N entries), each band
kept as a sorted array. A query within ``max_phash`` bits of an entry differs from it in at
most ``max_phash // m`` bits of at least one band (pigeonhole), so probing every band value
within that radius finds **every** entry within ``max_phash``, with no false miss; candidates
are then verified on both hashes. Lookups are ``numpy.searchsorted`` over a whole batch of
queries at once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from janus_build.dedup.config import HASH_BITS
from janus_build.dedup.hashing import hamming

TABLE_BITS = 24
MAX_CANDIDATES = 4_000_000  # candidate pairs verified at once (~150 MB of index arrays)
MATCH_ARRAYS = ("image", "view", "phash_distance", "dhash_distance")


@dataclass(frozen=True)
class Matches:
    """Verified pairs, one per (query, evaluation image): the closest view of that image."""

    query: np.ndarray  # int64 positions in the query batch
    image: np.ndarray  # int64 evaluation image numbers
    view: np.ndarray  # int16 view numbers (see hashing.view_names)
    phash_distance: np.ndarray  # int32
    dhash_distance: np.ndarray  # int32


def _band_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit XOR mask with at most ``radius`` bits set (0 first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), r)]
    return np.asarray(masks, dtype=np.uint64)


def _bucket_table(values: np.ndarray, width: int) -> np.ndarray:
    """``table[v]:table[v + 1]`` is the range of band value ``v`` in the sorted order."""
    counts = np.bincount(values, minlength=1 << width)
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64 if len(values) >= 2**31 else np.int32)


class HashIndex:
    """Exact Hamming-radius search over ``(phash, dhash)`` entries.

    Args:
        phash, dhash: uint64 arrays of the entries' hashes.
        image, view: the entries' evaluation image and view numbers.
        max_phash, max_dhash: the match thresholds (inclusive).
    """

    def __init__(
        self,
        phash: np.ndarray,
        dhash: np.ndarray,
        image: np.ndarray,
        view: np.ndarray,
        max_phash: int,
        max_dhash: int,
    ) -> None:
        self.phash = np.asarray(phash, dtype=np.uint64)
        self.dhash = np.asarray(dhash, dtype=np.uint64)
        self.image = np.asarray(image, dtype=np.int64)
        self.view = np.asarray(view, dtype=np.int16)
        self.max_phash, self.max_dhash = max_phash, max_dhash
        self.max_candidates = MAX_CANDIDATES
        size = len(self.phash)
        band_bits = min(32, max(8, math.ceil(math.log2(max(size, 2)))))
        self.bands = max(1, min(8, HASH_BITS // band_bits, max_phash + 1))
        self.radius = max_phash // self.bands
        edges = np.linspace(0, HASH_BITS, self.bands + 1).round().astype(int)
        self._layout = []
        for start, stop in zip(edges[:-1], edges[1:]):
            width = int(stop - start)
            values = ((self.phash >> np.uint64(start)) & np.uint64((1 << width) - 1)).astype(np.int64)
            order = np.argsort(values, kind="stable")
            # a band of <= 24 bits gets a bucket table (one gather per probe); wider ones a binary search
            table = _bucket_table(values, width) if width <= TABLE_BITS else None
            masks = _band_masks(width, self.radius).astype(np.int64)
            self._layout.append((int(start), (1 << width) - 1, values[order], order, masks, table))

    def __len__(self) -> int:
        return len(self.phash)

    def candidates(self, phash: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(query positions, entry numbers)`` of every entry sharing a probed band value.

        A pair found through several bands appears several times (cheaper to verify twice than
        to deduplicate); :meth:`search` keeps one row per (query, image). Returns None when a
        batch of several queries would produce more than :attr:`max_candidates` pairs (a dense
        cluster of similar evaluation hashes): :meth:`search` then halves the batch.
        """
        phash = np.asarray(phash, dtype=np.uint64)
        lookups = []
        for start, mask, sorted_values, order, flips, table in self._layout:
            band = ((phash >> np.uint64(start)) & np.uint64(mask)).astype(np.int64)
            probes = (band[:, None] ^ flips[None, :]).ravel()
            if table is not None:
                low, high = table[probes], table[probes + 1]
            else:
                low = np.searchsorted(sorted_values, probes, side="left")
                high = np.searchsorted(sorted_values, probes, side="right")
            lookups.append((low, high - low, order, len(flips)))
        if len(phash) > 1 and sum(int(counts.sum()) for _, counts, _, _ in lookups) > self.max_candidates:
            return None
        pairs = []
        for low, counts, order, probes in lookups:
            total = int(counts.sum())
            if not total:
                continue
            query = np.repeat(np.arange(len(phash)).repeat(probes), counts)
            starts = np.repeat(low - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
            pairs.append(query * len(self) + order[starts + np.arange(total)])
        if not pairs:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        found = np.concatenate(pairs)
        return found // len(self), found % len(self)

    def search(self, phash: np.ndarray, dhash: np.ndarray) -> Matches:
        """Every evaluation image with a view within both thresholds of each query, its closest view."""
        phash = np.asarray(phash, dtype=np.uint64)
        dhash = np.asarray(dhash, dtype=np.uint64)
        found = self.candidates(phash) if len(self) else (np.empty(0, np.int64),) * 2
        if found is None:  # too many candidates at once: two half batches bound the memory
            half = len(phash) // 2
            first, second = self.search(phash[:half], dhash[:half]), self.search(phash[half:], dhash[half:])
            return Matches(
                np.concatenate((first.query, second.query + half)),
                *(np.concatenate((getattr(first, f), getattr(second, f))) for f in MATCH_ARRAYS),
            )
        query, entry = found
        p_dist = hamming(phash[query], self.phash[entry])
        d_dist = hamming(dhash[query], self.dhash[entry])
        keep = (p_dist <= self.max_phash) & (d_dist <= self.max_dhash)
        query, entry, p_dist, d_dist = query[keep], entry[keep], p_dist[keep], d_dist[keep]
        image = self.image[entry]
        # closest view per (query, image): sort by the pair, then by summed distance; keep the first
        order = np.lexsort((p_dist + d_dist, image, query))
        query, image, entry, p_dist, d_dist = (a[order] for a in (query, image, entry, p_dist, d_dist))
        first = np.ones(len(query), dtype=bool)
        first[1:] = (query[1:] != query[:-1]) | (image[1:] != image[:-1])
        return Matches(query[first], image[first], self.view[entry[first]], p_dist[first], d_dist[first])
