"""Benchmark ``janus balance``: samples/s written and peak RSS for 100k and 1M index rows.

The source is an image stage whose parquet index has N rows (IN100 labels with a long-tailed
class distribution, unique keys, photo ids and URLs) pointing into one small tar of 1,000
distinct images (the "shared image bytes"), so generating 1M rows takes seconds and the
measurement is of balance itself: index work + streaming copy source-tar -> output-tar.

Each configuration runs in a fresh child process (peak RSS = that process's ru_maxrss). A
baseline measured in the same run writes the same number of samples with webdataset's
TarWriter from bytes already in memory (no index, no selection): the ratio shows what the
selection, provenance and index add to a bare tar write.

    .venv/bin/python benchmarks/bench_balance.py                 # 100k and 1M rows
    .venv/bin/python benchmarks/bench_balance.py --rows 20000    # quick check

Each configuration runs ``--repeat`` times (default 3) and the median is reported. The
``resume`` run deletes one finished output shard of an ``all rows`` run and runs again: it reads
the selection plan (``_selection.parquet``) instead of selecting again, so its figure shows what a
resume costs against a fresh run.

Exact-image-hash de-duplication is off here (every row shares one of 1,000 images, so it would
collapse the data); its cost is one read + SHA-256 per image whose size collides with another's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DISTINCT_IMAGES = 1000


def make_source(directory: Path, rows: int, index_shards: int = 10) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from janus_build.core.shards import ImageShardWriter, read_index
    from janus_build.core.stage import ShardDir
    from janus_build.demo.images import class_image
    from janus_build.labels import load_label_set

    ids = np.asarray(load_label_set("in100").ids)
    with ImageShardWriter(directory, "00000") as writer:  # 1,000 real images; the index reuses them
        for i in range(DISTINCT_IMAGES):
            writer.write(f"img-{i}", class_image(int(ids[i % 100]), i, 32), {})
    images = read_index(directory).to_pydict()
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 101) ** 0.8  # long-tailed, like OpenImages-100 (paper Fig. 6)
    labels = ids[rng.choice(100, size=rows, p=weights / weights.sum())].astype(np.int32)
    pick = np.arange(rows) % DISTINCT_IMAGES
    licences = np.array(["Attribution License", "Attribution-ShareAlike License", "CC0", "Public Domain Mark"])
    shards = ShardDir(directory)
    (directory / "00000.parquet").unlink()
    shards.unmark("00000")
    per = -(-rows // index_shards)
    for s in range(index_shards):
        lo, hi = s * per, min(rows, (s + 1) * per)
        n = np.arange(lo, hi)
        table = pa.table(
            {
                "key": pa.array([f"bench-{i:07d}" for i in n]),
                "shard": pa.array(["00000.tar"] * (hi - lo)),
                "image_ext": pa.array(["jpg"] * (hi - lo)),
                "image_offset": pa.array(np.asarray(images["image_offset"])[pick[lo:hi]], pa.int64()),
                "image_size": pa.array(np.asarray(images["image_size"])[pick[lo:hi]], pa.int64()),
                "status": pa.array(["success"] * (hi - lo)),
                "error_message": pa.nulls(hi - lo, pa.string()),
                "label": pa.array(labels[lo:hi]),
                "photo_id": pa.array([str(i) for i in n]),
                "url": pa.array([f"https://example.org/p/{i}.jpg" for i in n]),
                "title": pa.array([f"photo {i}" for i in n]),
                "owner": pa.array([f"owner{i % 5000}" for i in n]),
                "license": pa.array(licences[n % 4]),
            }
        )
        pq.write_table(table, directory / f"{s:05d}.parquet")
        shards.mark_done(f"{s:05d}", {"count": hi - lo})


def child(args: argparse.Namespace) -> None:
    """Run one balance in this process and print a JSON line of figures."""
    from janus_build.balance import BalanceConfig, SourceSpec, balance
    from janus_build.progress import Progress

    class Clock(Progress):
        def __init__(self) -> None:
            self.write_started: float | None = None

        def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
            if task.startswith("write") and self.write_started is None:
                self.write_started = time.perf_counter()

    clock = Clock()
    import matplotlib.pyplot  # noqa: F401  - imported by the card; webdataset imports torch (~600 MiB RSS)
    import webdataset  # noqa: F401

    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = BalanceConfig(
        out=args.out,
        sources=(SourceSpec.parse(f"name=bench,images={args.source},labels=ground_truth,kind=flickr"),),
        labels="in100",
        balance=args.balance,
        budget=args.budget,
        max_per_class=args.max_per_class,
        dedup=("key", "id", "url"),
        shard_size=10_000,
        val_fraction=0.02,
    )
    t0 = time.perf_counter()
    result = balance(config, clock)
    t1 = time.perf_counter()
    written = result.written
    write_s = t1 - (clock.write_started or t0)
    print(
        json.dumps(
            {
                "index_rows": args.rows,
                "written": written,
                "total_s": round(t1 - t0, 2),
                "select_s": round((clock.write_started or t1) - t0, 2),
                "write_s": round(write_s, 2),
                "samples_per_s": round(written / write_s, 1),
                "end_to_end_samples_per_s": round(written / (t1 - t0), 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rss_after_imports_mib": round(import_rss, 1),
            }
        )
    )


def baseline(samples: int, source: Path, out: Path) -> dict:
    """Write ``samples`` samples with a bare TarWriter from in-memory bytes (no selection, no index)."""
    import webdataset as wds

    from janus_build.core.shards import read_image, read_index

    index = read_index(source, columns=["image_offset", "image_size"]).slice(0, DISTINCT_IMAGES).to_pydict()
    blobs = [read_image(source, "00000.tar", o, s) for o, s in zip(index["image_offset"], index["image_size"])]
    t0 = time.perf_counter()
    written = 0
    shard = 0
    while written < samples:
        with wds.TarWriter(str(out / f"{shard:05d}.tar")) as tar:
            for _ in range(min(10_000, samples - written)):
                tar.write(
                    {
                        "__key__": f"b-{written:07d}",
                        "jpg": blobs[written % len(blobs)],
                        "cls": b"1",
                        "txt": b"photo",
                        "json": json.dumps({"key": written, "url": "https://example.org"}).encode(),
                    }
                )
                written += 1
        shard += 1
    elapsed = time.perf_counter() - t0
    return {"written": written, "seconds": round(elapsed, 2), "samples_per_s": round(written / elapsed, 1)}


def _child_run(rows: int, source: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--_child", "--rows", str(rows), "--source", str(source), "--out", str(out)]
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode:
        sys.exit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_of(repeat: int, label: str, rows: int, source: Path, out: Path, extra: list[str]) -> dict:
    """Run a configuration ``repeat`` times (fresh output each time; for ``resume``, a finished run
    that lost one shard) and report the median of each figure."""
    import statistics

    runs = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        if label.startswith("resume"):
            _child_run(rows, source, out, extra)
            for path in (
                out / "train" / "00000.tar",
                out / "train" / "00000.parquet",
                out / "train" / "_stats" / "00000.json",
            ):
                path.unlink()
        runs.append(_child_run(rows, source, out, extra))
    shutil.rmtree(out, ignore_errors=True)
    figures = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    figures.update(run=label, repeat=repeat, load=os.getloadavg()[0])
    print(json.dumps(figures), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", default=None, help="Scratch directory (default: a temporary one, removed after).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per configuration; the median is reported.")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source"), parser.add_argument("--out"), parser.add_argument("--budget")
    parser.add_argument("--balance", default="none"), parser.add_argument("--max-per-class", type=int)
    args = parser.parse_args()
    if args._child:
        args.rows = args.rows[0]
        child(args)
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_balance_"))
    results = []
    try:
        for rows in args.rows:
            source = work / f"src_{rows}"
            t0 = time.perf_counter()
            make_source(source, rows)
            print(f"generated {rows:,} index rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            runs = [("all rows", []), ("cap 500/class", ["--balance", "cap", "--max-per-class", "500"])]
            if rows >= 1_000_000:
                runs.append(("budget 100k", ["--budget", "100000", "--balance", "cap"]))
            for label, extra in runs:
                results.append(_median_of(args.repeat, label, rows, source, work / f"out_{rows}", extra))
            results.append(_median_of(args.repeat, "resume (one shard lost)", rows, source, work / f"out_{rows}", []))
            base_out = work / f"base_{rows}"
            base_out.mkdir()
            base = baseline(rows, source, base_out)
            base["run"] = f"baseline TarWriter, {rows:,} samples"
            results.append(base)
            print(json.dumps(base), flush=True)
            shutil.rmtree(base_out)
            shutil.rmtree(source)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
