"""Benchmark ``janus fetch`` against the fake Flickr server on loopback.

1. API calls per 1,000 photos kept (ideal: 2 at 500 per page) for targets below and above
   Flickr's 4,000-result cap; the excess above the ideal is the cost of upload-date slicing
   (a probe page per split window, pages cut short at window edges) and of local drops.
2. Images downloaded per second through img2dataset (re-keyed into image shards), against a
   baseline measured in the same run: one ``requests`` session fetching the same URLs in turn.

Usage: python benchmarks/bench_fetch.py [--photos 20000] [--download 2000] [--processes 2 --threads 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path


def api_calls(photos: int, targets: list[int]) -> list[dict]:
    from janus_build.demo.flickr_server import FakeFlickr
    from janus_build.fetch import FetchConfig, run

    rows = []
    with FakeFlickr({7: "cock"}, photos_per_class=photos) as fake, tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "q.toml"
        queries.write_text('[[class]]\nid = 7\nname = "cock"\nqueries = ["cock"]\n')
        for target in targets:
            start = len(fake.calls)
            t0 = time.perf_counter()
            result = run(
                FetchConfig(
                    out=Path(tmp) / f"t{target}",
                    queries=queries,
                    per_class=target,
                    api_url=fake.api_url,
                    calls_per_hour=10**7,
                    metadata_only=True,
                ),
                credentials=fake.credentials,
            )
            seconds = time.perf_counter() - t0
            row = result.report["classes"]["7"]
            calls = len(fake.calls) - start
            fetched = row["fetched"]
            rows.append(
                {
                    "target": target,
                    "available": row["available"],
                    "fetched": fetched,
                    "api_calls": calls,
                    "calls_per_1000": round(1000 * calls / max(1, fetched), 2),
                    "ideal_calls": math.ceil(fetched / 500),
                    "windows": row["windows"],
                    "dropped_locally": sum(row["dropped"].values()),
                    "seconds": round(seconds, 2),
                }
            )
    return rows


def download_rate(count: int, processes: int, threads: int) -> dict:
    import requests

    from janus_build.core.shards import read_index
    from janus_build.demo.flickr_server import FakeFlickr
    from janus_build.fetch import FetchConfig, run

    with (
        FakeFlickr({291: "lion"}, photos_per_class=int(count * 1.7), image_size=256) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        queries = Path(tmp) / "q.toml"
        queries.write_text('[[class]]\nid = 291\nname = "lion"\nqueries = ["lion"]\n')
        config = FetchConfig(
            out=Path(tmp) / "out",
            queries=queries,
            per_class=count,
            api_url=fake.api_url,
            calls_per_hour=10**7,
            metadata_only=True,
            processes=processes,
            threads=threads,
        )
        run(config, credentials=fake.credentials)
        import pyarrow.parquet as pq

        urls = (
            pq.read_table(Path(tmp) / "out" / "metadata" / "00291.parquet", columns=["url"]).column("url").to_pylist()
        )
        t0 = time.perf_counter()
        session = requests.Session()
        baseline_bytes = sum(len(session.get(u, timeout=30).content) for u in urls)
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        run(dataclasses.replace(config, metadata_only=False), credentials=fake.credentials)
        seconds = time.perf_counter() - t0
        index = read_index(Path(tmp) / "out" / "images")
        ok = sum(1 for s in index.column("status").to_pylist() if s == "success")
    return {
        "images": len(urls),
        "downloaded": ok,
        "image_bytes_mean": round(baseline_bytes / max(1, len(urls))),
        "processes": processes,
        "threads": threads,
        "janus_seconds": round(seconds, 2),
        "janus_images_per_s": round(ok / seconds, 1),
        "baseline_sequential_seconds": round(baseline, 2),
        "baseline_images_per_s": round(len(urls) / baseline, 1),
        "speedup_vs_baseline": round((ok / seconds) / (len(urls) / baseline), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20000, help="fake corpus size of the API-call benchmark")
    parser.add_argument("--targets", default="1000,3000,8000,100000")
    parser.add_argument("--download", type=int, default=2000, help="images in the download benchmark")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    calls = api_calls(args.photos, [int(t) for t in args.targets.split(",")])
    print("API calls per 1,000 photos kept (ideal 2.0)")
    for row in calls:
        print(json.dumps(row))
    download = download_rate(args.download, args.processes, args.threads)
    print("download")
    print(json.dumps(download))


if __name__ == "__main__":  # img2dataset starts processes with 'spawn': the guard is required
    main()
