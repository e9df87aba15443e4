"""dedup.index: the multi-index hash finds exactly what a brute-force Hamming scan finds."""

from __future__ import annotations

import numpy as np
import pytest

from janus_build.dedup.hashing import hamming
from janus_build.dedup.index import HashIndex


def _random_hashes(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 2**63, count, dtype=np.int64).view(np.uint64) ^ (
        rng.integers(0, 2, count).astype(np.uint64) << np.uint64(63)
    )


def _flip_bits(rng: np.random.Generator, hashes: np.ndarray, flips: np.ndarray) -> np.ndarray:
    out = hashes.copy()
    for i, count in enumerate(flips):
        for bit in rng.choice(64, int(count), replace=False):
            out[i] ^= np.uint64(1) << np.uint64(int(bit))
    return out


@pytest.mark.parametrize(("entries", "max_phash", "max_dhash"), [(40, 8, 10), (3000, 8, 10), (3000, 3, 5), (300, 0, 0)])
def test_search_equals_brute_force(entries, max_phash, max_dhash):
    rng = np.random.default_rng(entries + max_phash)
    phash, dhash = _random_hashes(rng, entries), _random_hashes(rng, entries)
    images = np.arange(entries) // 3  # three views per image
    index = HashIndex(phash, dhash, images, np.arange(entries) % 3, max_phash, max_dhash)
    source = rng.integers(0, entries, 400)
    queries_p = _flip_bits(rng, phash[source], rng.integers(0, max_phash + 4, 400))
    queries_d = _flip_bits(rng, dhash[source], rng.integers(0, max_dhash + 4, 400))

    found = index.search(queries_p, queries_d)

    p_dist = hamming(queries_p[:, None], phash[None, :])
    d_dist = hamming(queries_d[:, None], dhash[None, :])
    query, entry = ((p_dist <= max_phash) & (d_dist <= max_dhash)).nonzero()
    expected = set(zip(query.tolist(), images[entry].tolist()))
    assert set(zip(found.query.tolist(), found.image.tolist())) == expected
    assert len(found.query) == len(expected)  # one row per (query, image)
    assert 0 < len(expected) < 400  # both matches and misses were exercised
    # the reported view is the closest view of that image
    for q, image, view, p, d in zip(found.query, found.image, found.view, found.phash_distance, found.dhash_distance):
        views = np.nonzero(images == image)[0]
        assert p + d == min(
            int(p_dist[q, v] + d_dist[q, v]) for v in views if p_dist[q, v] <= max_phash and d_dist[q, v] <= max_dhash
        )
        assert p == p_dist[q, image * 3 + view]


def test_exact_threshold_is_inclusive_and_one_more_bit_is_not():
    base = np.asarray([0x0123456789ABCDEF], dtype=np.uint64)
    index = HashIndex(base, base, np.asarray([0]), np.asarray([0]), 8, 10)
    rng = np.random.default_rng(1)
    at_limit = index.search(_flip_bits(rng, base, np.asarray([8])), _flip_bits(rng, base, np.asarray([10])))
    beyond = index.search(_flip_bits(rng, base, np.asarray([9])), base)
    assert list(at_limit.phash_distance) == [8] and list(at_limit.dhash_distance) == [10]
    assert len(beyond.query) == 0


def test_empty_index_finds_nothing():
    empty = np.empty(0, dtype=np.uint64)
    index = HashIndex(empty, empty, np.empty(0, np.int64), np.empty(0, np.int16), 8, 10)
    assert len(index.search(np.asarray([5], dtype=np.uint64), np.asarray([5], dtype=np.uint64)).query) == 0


def test_a_dense_cluster_is_searched_in_smaller_batches_with_the_same_result():
    rng = np.random.default_rng(5)
    centre = _random_hashes(rng, 1)
    phash = _flip_bits(rng, np.repeat(centre, 600), rng.integers(0, 4, 600))  # 600 near-identical entries
    dhash = _flip_bits(rng, np.repeat(centre, 600), rng.integers(0, 4, 600))
    index = HashIndex(phash, dhash, np.arange(600), np.zeros(600), 8, 10)
    queries_p = _flip_bits(rng, np.repeat(centre, 50), rng.integers(0, 4, 50))
    queries_d = _flip_bits(rng, np.repeat(centre, 50), rng.integers(0, 4, 50))
    whole = index.search(queries_p, queries_d)
    index.max_candidates = 500  # forces repeated halving, down to single queries
    assert index.candidates(queries_p) is None
    split = index.search(queries_p, queries_d)
    for name in ("query", "image", "view", "phash_distance", "dhash_distance"):
        assert np.array_equal(getattr(whole, name), getattr(split, name))
    assert len(whole.query) > 50 * 500  # most queries match most entries
