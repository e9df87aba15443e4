"""Selection on the index only: preference order, de-duplication, per-class quotas, split.

Every decision is a pure function of the candidate index, the options and the seed, so the
same inputs give the same selection. The algorithm (docs/balance.md has the long form):

1. Preference order: ``(priority, -ln(u)/weight, source position)`` where ``u`` is a seeded
   hash of the key (weighted sampling without replacement, Efraimidis-Spirakis keys).
2. De-duplication in that order: the first (most preferred) of each group sharing a key, a
   photo id, a normalised URL or exact image bytes is kept.
3. Pool per class: every ``role=base`` sample, plus ``role=fill`` samples (in preference order)
   until the class reaches ``--min-per-class``.
4. Quota per class from ``--balance``/``--max-per-class``/``--budget``; a class keeps the first
   ``quota`` samples of its pool in preference order.
5. Split: ``val`` when a stable (unseeded) hash of the key falls below ``--val-fraction``.
6. Output order: a seeded shuffle, so shards mix classes and sources.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from janus_build.errors import ConfigError

log = logging.getLogger(__name__)

_MASK53 = (1 << 53) - 1


class BudgetError(ConfigError):
    """``--budget`` asks for more samples than the sources hold."""


def _h64(text: str, salt: bytes = b"") -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=salt).digest(), "little")


CHUNK = 65_536


def _strings(values: Any) -> Iterator[list[Any]]:
    """Yield Python lists of a list or (chunked) Arrow string array, a chunk at a time."""
    if isinstance(values, list):
        for start in range(0, len(values), CHUNK):
            yield values[start : start + CHUNK]
        return
    for start in range(0, len(values), CHUNK):
        yield values.slice(start, CHUNK).to_pylist()


def hash_strings(
    values: Any, salt: bytes = b"", transform: Callable[[str], str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of strings (list or Arrow array) and a mask of the non-empty ones."""
    hashes = np.zeros(len(values), dtype=np.uint64)
    present = np.zeros(len(values), dtype=bool)
    start = 0
    for chunk in _strings(values):
        for i, v in enumerate(chunk, start):
            if v is not None and v.strip():
                hashes[i] = _h64(transform(v) if transform else v, salt)
                present[i] = True
        start += len(chunk)
    return hashes, present


def seeded_uniform(keys: Any, seed: int, salt: str) -> np.ndarray:
    """A uniform number in (0, 1) per key (list or Arrow array), a pure function of (key, seed, salt)."""
    hashes, _ = hash_strings(keys, f"{salt}:{seed}".encode()[:64])
    return ((hashes & np.uint64(_MASK53)).astype(np.float64) + 0.5) / float(1 << 53)


def stable_fraction(keys: Any) -> np.ndarray:
    """A number in [0, 1) per key, independent of any seed (for the train/val split)."""
    hashes, _ = hash_strings(keys, b"janus-val-split")
    return (hashes & np.uint64(_MASK53)).astype(np.float64) / float(1 << 53)


def normalise_url(url: str) -> str:
    """Strip, lower-case scheme and host, drop the fragment and a default port."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc.lower()
    for port, scheme in ((":80", "http"), (":443", "https")):
        if netloc.endswith(port) and parts.scheme.lower() == scheme:
            netloc = netloc[: -len(port)]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def _first_of_groups(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Mask of rows to keep: rows without a value, and the first row (in array order) of each value."""
    keep = np.ones(len(values), dtype=bool)
    idx = np.flatnonzero(present)
    if len(idx):
        _, first = np.unique(values[idx], return_index=True)
        dup = np.ones(len(idx), dtype=bool)
        dup[first] = False
        keep[idx[dup]] = False
    return keep


@dataclass
class Dedup:
    """How many rows each duplicate check removed, and a few examples (kept key, dropped key)."""

    removed: dict[str, int]
    examples: dict[str, list[tuple[str, str]]]
    label_conflicts: int
    images_hashed: int = 0


def deduplicate(
    keys: Any,
    key_ids: Any,
    id_ids: Any,
    urls: Any,
    sizes: np.ndarray,
    labels: np.ndarray,
    checks: tuple[str, ...],
    image_hash: Callable[[np.ndarray], list[bytes]],
) -> tuple[np.ndarray, Dedup]:
    """Return a keep-mask over rows already in preference order, and what was removed.

    ``keys`` (for the examples), ``urls`` and the ids are lists or Arrow string arrays. ``key_ids`` and
    ``id_ids`` are de-duplication ids already namespaced (:func:`janus_build.core.keys.dedup_id`):
    a key is the same sample only within one image stage, a photo id only within its id space.
    ``image_hash(rows)`` returns the digest of each row's image bytes; it is only asked for rows
    whose image size equals another surviving row's (exact duplicates have equal sizes).
    """
    n = len(labels)
    keep = np.ones(n, dtype=bool)
    removed: dict[str, int] = {}
    examples: dict[str, list[tuple[str, str]]] = {}
    conflicts = 0

    def key_at(i: int) -> str:
        return keys[i] if isinstance(keys, list) else keys[i].as_py()

    def apply(check: str, hashed: np.ndarray, present: np.ndarray) -> None:
        nonlocal conflicts
        present = present & keep
        mask = _first_of_groups(hashed, present)
        dropped = np.flatnonzero(present & ~mask)
        if len(dropped):
            # who kept each dropped row's group: the first present row with the same value
            idx = np.flatnonzero(present)
            order = np.argsort(hashed[idx], kind="stable")
            first_pos = np.searchsorted(hashed[idx][order], hashed[dropped])
            keeper = idx[order][first_pos]
            conflicts += int((labels[keeper] != labels[dropped]).sum())
            examples[check] = [(key_at(int(k)), key_at(int(d))) for k, d in zip(keeper[:5], dropped[:5])]
        removed[check] = int(len(dropped))
        keep[:] = keep & mask

    if "key" in checks:
        apply("key", *hash_strings(key_ids))
    if "id" in checks:
        apply("id", *hash_strings(id_ids))
    if "url" in checks:
        apply("url", *hash_strings(urls, transform=normalise_url))
    hashed_rows = 0
    if "hash" in checks:
        hashed_rows = _hash_check(keep, sizes, image_hash, apply)
    return keep, Dedup(removed=removed, examples=examples, label_conflicts=conflicts, images_hashed=hashed_rows)


def _hash_check(keep: np.ndarray, sizes: np.ndarray, image_hash: Callable, apply: Callable) -> int:
    alive = np.flatnonzero(keep)
    values, counts = np.unique(sizes[alive], return_counts=True)
    shared = np.isin(sizes, values[counts > 1]) & keep
    rows = np.flatnonzero(shared)
    hashed = np.zeros(len(keep), dtype=np.uint64)
    if len(rows):
        digests = image_hash(rows)
        hashed[rows] = np.fromiter((int.from_bytes(d[:8], "little") for d in digests), dtype=np.uint64, count=len(rows))
    apply("hash", hashed, shared)
    return int(len(rows))


def metaclip_keep(
    rows: np.ndarray, classes: np.ndarray, keys: list[str], num_classes: int, t: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """MetaCLIP's balancing (Xu et al. 2023, "Demystifying CLIP Data", Algorithm 1).

    ``(rows[i], classes[i])`` are the (sample, class) entries of the pool: a sample matching
    several classes has one entry per class. With ``count[c]`` the entries of class ``c``, each
    entry is kept with probability ``t / max(count[c], t)`` (a class under ``t`` keeps every
    sample; a class over it keeps ``t`` in expectation), decided by a seeded hash of
    ``(key, class)``; a sample is kept when any of its entries is.

    Returns:
        The kept sample indices (sorted, unique) and ``count`` per class.
    """
    count = np.bincount(classes, minlength=num_classes)
    probability = t / np.maximum(count, t).astype(np.float64)
    u = seeded_uniform([f"{keys[r]}\x1f{c}" for r, c in zip(rows.tolist(), classes.tolist())], seed, "metaclip")
    return np.unique(rows[u < probability[classes]]), count


# --- quotas --------------------------------------------------------------------------------
def water_fill(lower: np.ndarray, upper: np.ndarray, total: int, tie_order: np.ndarray) -> np.ndarray:
    """Integer quotas ``q`` with ``lower <= q <= upper``, sum ``total``, as level as possible.

    Finds the largest level ``C`` with ``sum(clip(C, lower, upper)) <= total`` and gives the
    remainder, one each, to classes that can grow, in ``tie_order`` (a seeded class order).
    """
    lower = np.minimum(lower, upper)
    if total <= lower.sum():
        return lower.copy()
    if total >= upper.sum():
        return upper.copy()
    lo, hi = 0, int(upper.max())
    while lo < hi:  # largest C with S(C) <= total
        mid = (lo + hi + 1) // 2
        if np.clip(mid, lower, upper).sum() <= total:
            lo = mid
        else:
            hi = mid - 1
    quota = np.clip(lo, lower, upper)
    remainder = int(total - quota.sum())
    can_grow = [c for c in tie_order if quota[c] < upper[c] and quota[c] == lo]
    for c in can_grow[:remainder]:
        quota[c] += 1
    return quota


def proportional(lower: np.ndarray, upper: np.ndarray, total: int) -> np.ndarray:
    """Integer quotas proportional to ``upper`` (the class distribution), floored at ``lower``.

    Largest-remainder rounding; ties go to the lower class index.
    """
    lower = np.minimum(lower, upper)
    if total <= lower.sum():
        return lower.copy()
    if total >= upper.sum():
        return upper.copy()
    up = upper.astype(np.float64)
    lo_f = lower.astype(np.float64)
    a, b = 0.0, 1.0
    for _ in range(80):  # find t with sum(clip(t*upper, lower, upper)) == total
        t = (a + b) / 2
        if np.clip(t * up, lo_f, up).sum() <= total:
            a = t
        else:
            b = t
    real = np.clip(a * up, lo_f, up)
    quota = np.floor(real + 1e-9).astype(np.int64)
    quota = np.maximum(quota, lower)
    remainder = int(total - quota.sum())
    if remainder > 0:
        frac = real - quota
        order = sorted((c for c in range(len(quota)) if quota[c] < upper[c]), key=lambda c: (-frac[c], c))
        for c in order[:remainder]:
            quota[c] += 1
    return quota


@dataclass(frozen=True)
class QuotaPlan:
    quota: np.ndarray
    target: int | None  # the per-class target of --balance equal, or the cap level of --balance cap
    budget_samples: int | None


def quotas(
    pool: np.ndarray,
    *,
    balance: str,
    min_per_class: int | None,
    max_per_class: int | None,
    budget_samples: int | None,
    tie_order: np.ndarray,
    describe_pool: Callable[[], str],
) -> QuotaPlan:
    """Per-class sample counts for the policy (see the module docstring).

    Raises:
        BudgetError: the budget exceeds what the pool holds under ``--max-per-class``.
    """
    upper = pool.copy()
    if max_per_class is not None:
        upper = np.minimum(upper, max_per_class)
    lower = np.minimum(upper, min_per_class or 0)
    if budget_samples is not None and budget_samples > upper.sum():
        capped = " under --max-per-class" if max_per_class is not None else ""
        raise BudgetError(
            f"--budget asks for {budget_samples:,} samples but the sources hold only {int(upper.sum()):,} eligible samples{capped} "
            f"after labels and de-duplication ({describe_pool()}); lower --budget or --budget-unit, or add sources"
        )
    if budget_samples is not None and budget_samples < lower.sum():
        raise BudgetError(
            f"--budget asks for {budget_samples:,} samples but --min-per-class {min_per_class} needs {int(lower.sum()):,} "
            f"({len(lower)} classes); raise --budget or lower --min-per-class"
        )
    target = None
    if balance == "none":
        quota = upper if budget_samples is None else proportional(lower, upper, budget_samples)
    elif balance == "cap":
        if budget_samples is None:
            quota, target = upper, max_per_class
        else:
            quota = water_fill(lower, upper, budget_samples, tie_order)
            grown = quota[quota < upper]
            target = int(grown.max()) if len(grown) else int(quota.max())
    else:  # equal
        candidates = [
            v
            for v in (max_per_class, budget_samples // len(pool) if budget_samples is not None else None)
            if v is not None
        ]
        if candidates:
            target = int(min(candidates))
        else:
            nonzero = pool[pool > 0]
            target = int(nonzero.min()) if len(nonzero) else 0
        if min_per_class and target < min_per_class:
            raise ConfigError(
                f"--balance equal: the per-class target {target} (from --budget/--max-per-class) is below --min-per-class {min_per_class}"
            )
        quota = np.minimum(pool, target)
    return QuotaPlan(quota=np.asarray(quota, dtype=np.int64), target=target, budget_samples=budget_samples)


def budget_to_samples(number: float, multiple: bool, unit: int) -> int:
    """``2x`` with unit 120000 -> 240000; a plain count stays as it is."""
    return int(round(number * unit)) if multiple else int(number)


def efraimidis_keys(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sort ascending by these to sample without replacement with probability ~ weight."""
    return -np.log(u) / weights


def class_tie_order(num_classes: int, seed: int) -> np.ndarray:
    """A seeded order of class indices used to hand out remainders."""
    u = seeded_uniform([str(c) for c in range(num_classes)], seed, "class-order")
    return np.argsort(u, kind="stable")


__all__ = [
    "BudgetError",
    "Dedup",
    "QuotaPlan",
    "budget_to_samples",
    "class_tie_order",
    "deduplicate",
    "metaclip_keep",
    "efraimidis_keys",
    "normalise_url",
    "proportional",
    "quotas",
    "seeded_uniform",
    "stable_fraction",
    "water_fill",
]
