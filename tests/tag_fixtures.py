"""Tiny generated image stages and match outputs for the ``janus tag`` tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from janus_build.core.shards import ImageShardWriter
from janus_build.demo.images import class_image

XSS_TITLE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def make_stage(
    root: Path,
    classes: dict[int, int],
    *,
    shards: int = 2,
    size: int = 16,
    fetch_layout: bool = True,
    report: bool = True,
    failed: int = 1,
    meta: Callable[[int, int], dict[str, Any]] | None = None,
) -> Path:
    """A ``janus fetch``-like output: ``root/images/`` shards (+ ``report.json``); returns ``root``.

    Keys are ``flickr-<n>`` numbered per class in order; the first image's title is an XSS probe;
    ``failed`` rows per shard have no image (they must never enter the queue). Every image has
    Flickr's attribution columns (owner_name, license, license_url, page_url); ``meta(class_id, j)``
    overrides any of its columns.
    """
    images = root / "images" if fetch_layout else root
    plan = [(c, j) for c, n in sorted(classes.items()) for j in range(n)]
    per_shard = -(-len(plan) // shards)
    n = 0
    for s in range(shards):
        with ImageShardWriter(images, f"{s:05d}") as writer:
            for c, j in plan[s * per_shard : (s + 1) * per_shard]:
                n += 1
                title = XSS_TITLE if n == 1 else f"photo {j} of class {c}"
                row = {
                    "class_id": c,
                    "photo_id": f"{c}{j}",
                    "title": title,
                    "tags": f"tag{c} <b>tree</b>",
                    "description": "",
                    "owner": "12345678@N00",
                    "owner_name": f"Owner {j % 7}",
                    "license": "CC BY 2.0",
                    "license_url": "https://creativecommons.org/licenses/by/2.0/",
                    "page_url": f"https://www.flickr.com/photos/12345678@N00/{c}{j}"
                    if n != 1
                    else "javascript:window.__xss = 3",
                    "url": f"https://example.org/{c}/{j}.jpg",
                }
                writer.write(f"flickr-{c}x{j}", class_image(c, j, size), {**row, **(meta(c, j) if meta else {})})
            for f in range(failed):
                writer.write(
                    f"flickr-failed{s}x{f}",
                    None,
                    {"class_id": plan[0][0], "title": "broken"},
                    status="failed_to_download",
                    error_message="404",
                )
    if report and fetch_layout:
        (root / "report.json").write_text(
            json.dumps(
                {
                    "classes": {
                        str(c): {"available": 10 * n + 7, "fetched": n, "downloaded": n} for c, n in classes.items()
                    }
                }
            )
        )
    return root


def key(class_id: int, j: int) -> str:
    return f"flickr-{class_id}x{j}"


def known_decision(k: str) -> str:
    """A deterministic answer per key (about 60 % in, 30 % out, 10 % unsure)."""
    h = sum(ord(ch) * (i + 1) for i, ch in enumerate(k)) % 10
    return "in" if h < 6 else ("out" if h < 9 else "unsure")


def make_match_output(root: Path, per_label: dict[int, int], unlabelled: int = 5) -> Path:
    """A ``janus match``-like output: two parquet shards with key, label, labels, matched_terms, TEXT, URL."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, n in sorted(per_label.items()):
        for j in range(n):
            rows.append(
                {
                    "key": f"laion-{label}-{j}",
                    "label": label,
                    "labels": [label],
                    "matched_terms": [f"term{label}"],
                    "TEXT": f"a photo of term{label} number {j}",
                    "URL": f"https://img.example.org/{label}/{j}.jpg",
                }
            )
    for j in range(unlabelled):
        rows.append(
            {"key": f"laion-none-{j}", "label": -1, "labels": [], "matched_terms": [], "TEXT": "nothing", "URL": None}
        )
    schema = pa.schema(
        [
            ("key", pa.string()),
            ("label", pa.int32()),
            ("labels", pa.list_(pa.int32())),
            ("matched_terms", pa.list_(pa.string())),
            ("TEXT", pa.string()),
            ("URL", pa.string()),
        ]
    )
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half], schema=schema), root / "00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:], schema=schema), root / "00001.parquet")
    (root / "_manifest.json").write_text(json.dumps({"stage": "match", "config": {"strategy": "sc"}}))
    return root
