"""Benchmark the source importers: rows/s and peak RSS on 1M-row synthetic files in each
source's published format (docs/benchmarks.md, "janus import").

* ``yfcc``: a Webscope part (23 tab-separated fields, URL-encoded text), plain text;
* ``laion``: one LAION-400M parquet file (SAMPLE_ID, URL, TEXT, ..., LICENSE, NSFW);
* ``openimages``: an image list CSV of N rows and a human-labels CSV of N rows (one in ten an
  IN100 label, one in five of those Confidence 0), N/10 Localized Narratives; metadata stage;
* ``imagenet-captions``: a JSON list of N records, one in ten of an IN100 class, of which 1,000
  have a file on disk (the rest are reported as captions without images).

Each run is a fresh child process (peak RSS = its VmHWM). Baselines measured in the same
run: reading the same file without parsing (lines for text, record batches for parquet) and
the child's RSS after its imports. Run with ``--rows 200000`` as well to see that memory does
not grow with the file.

    .venv/bin/python benchmarks/bench_import.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "importers"))  # the published-format writers


def make_yfcc(directory: Path, rows: int) -> dict:
    from published import yfcc_line, yfcc_photo

    words = ["lion", "a day at the beach", "Schöne Grüße", "goose & gander", "100% teapot", "sunset"]
    path = directory / "yfcc100m_dataset-0"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            photo = yfcc_photo(10**9 + i, f"{words[i % 6]} {i}", f"{words[(i + 1) % 6]}\nline two", (words[i % 5],))
            handle.write(yfcc_line(photo))
    return {"inputs": [str(path)], "read": str(path)}


def make_laion(directory: Path, rows: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from published import laion400m_rows

    path = directory / "part-00000-5b54c5d5.snappy.parquet"
    writer = None
    for start in range(0, rows, 100_000):
        table = pa.Table.from_pylist(laion400m_rows(min(100_000, rows - start), start))
        writer = writer or pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table)
    writer.close()
    return {"inputs": [str(path)], "read": str(path)}


def make_openimages(directory: Path, rows: int) -> dict:
    import csv

    from published import OI_IMAGE_COLUMNS, oi_image

    from janus_build.importers.openimages import load_mapping
    from janus_build.labels import load_label_set

    mids = sorted(load_mapping(None, set(load_label_set("in100").ids)))
    images, labels, narratives = (directory / n for n in ("images.csv", "labels.csv", "narratives.jsonl"))
    with open(images, "w", newline="") as a, open(labels, "w", newline="") as b, open(narratives, "w") as c:
        image_writer, label_writer = csv.writer(a), csv.writer(b)
        image_writer.writerow(OI_IMAGE_COLUMNS)
        label_writer.writerow(("ImageID", "Source", "LabelName", "Confidence"))
        for i in range(rows):
            image_id = f"{i:016x}"
            row = oi_image(image_id, f"photo {i}")
            image_writer.writerow([row[k] for k in OI_IMAGE_COLUMNS])
            mapped = i % 10 == 0
            label = mids[i % len(mids)] if mapped else "/m/01g317"
            label_writer.writerow((image_id, "verification", label, 0 if mapped and i % 50 == 0 else 1))
            if mapped:
                c.write(json.dumps({"dataset_id": "open_images_train_v6", "image_id": image_id,
                                    "annotator_id": 1, "caption": "In this image we can see an animal."}) + "\n")  # fmt: skip
    return {"images_csv": str(images), "labels_csv": str(labels), "narratives": [str(narratives)], "read": str(images)}


def make_captions(directory: Path, rows: int) -> dict:
    from janus_build.demo.images import class_image
    from janus_build.labels import load_label_set

    in100 = load_label_set("in100")
    in100_wnids = [in100.wnids[c] for c in in100.ids]
    root = directory / "train"
    path = directory / "imagenet_captions.json"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[")
        for i in range(rows):
            wnid = in100_wnids[i % 100] if i % 10 == 0 else f"n{90000000 + i % 900:08d}"
            record = {"filename": f"{wnid}_{i}.JPEG", "title": f"Löwe {i}", "tags": ["zoo", "cat"],
                      "description": "a <b>lion</b> &amp; cub", "wnid": wnid}  # fmt: skip
            handle.write(("," if i else "") + "\n    " + json.dumps(record))
            if i % 10 == 0 and i // 10 < 1000:
                (root / wnid).mkdir(parents=True, exist_ok=True)
                (root / wnid / record["filename"]).write_bytes(class_image(in100.ids[i % 100], i, 16))
        handle.write("\n]")
    return {"captions": str(path), "root": str(root), "read": str(path)}


MAKERS = {"yfcc": make_yfcc, "laion": make_laion, "openimages": make_openimages, "imagenet-captions": make_captions}


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries the parent's high-water
    mark into a forked child, so ru_maxrss would report the benchmark driver's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, spec: dict, out: str) -> dict:
    """Runs in a fresh process: import, time the importer, report rows and peak RSS."""
    import pyarrow.parquet  # noqa: F401  - every importer's writer; counted in "after imports"

    from janus_build import importers

    if kind == "imagenet-captions":
        import webdataset  # noqa: F401  - the image-shard writer; it imports torch (~800 MiB RSS)
    imported_rss = peak_rss_mib()
    start = time.perf_counter()
    if kind == "yfcc":
        summary = importers.import_yfcc(importers.YfccConfig(inputs=tuple(spec["inputs"]), out=Path(out)))
        rows = summary["rows_read"]
    elif kind == "laion":
        summary = importers.import_laion(importers.LaionConfig(inputs=tuple(spec["inputs"]), out=Path(out)))
        rows = summary["rows"]
    elif kind == "openimages":
        config = importers.OpenImagesConfig(
            images_csv=Path(spec["images_csv"]), labels_csv=Path(spec["labels_csv"]), out=Path(out),
            narratives=tuple(Path(p) for p in spec["narratives"]),
        )  # fmt: skip
        summary = importers.import_openimages(config)
        rows = summary["image_rows"]
    else:
        config = importers.ImagenetCaptionsConfig(
            captions=Path(spec["captions"]), root=Path(spec["root"]), out=Path(out)
        )
        summary = importers.import_imagenet_captions(config)
        rows = summary["captions"]
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "peak_rss_mib": peak_rss_mib(), "imported_rss_mib": imported_rss}


def baseline(path: str) -> dict:
    """Read the file without parsing: lines for text, record batches for parquet."""
    start = time.perf_counter()
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        rows = sum(b.num_rows for b in pq.ParquetFile(path).iter_batches(batch_size=65_536))
    else:
        with open(path, encoding="utf-8") as handle:
            rows = sum(1 for _ in handle)
    return {
        "rows": rows,
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
    }


def _run_child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(MAKERS), action="append")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SPEC", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]), args.child[2])))
        return
    if args.baseline:
        print(json.dumps(baseline(args.baseline)))
        return
    print(f"uptime: {os.getloadavg()}, rows: {args.rows:,}", flush=True)
    for kind in args.only or sorted(MAKERS):
        work = Path(tempfile.mkdtemp(prefix=f"bench-import-{kind}-"))
        try:
            spec = MAKERS[kind](work, args.rows)
            size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
            runs = []
            for n in range(args.repeat):
                runs.append(_run_child(["--child", kind, json.dumps(spec), str(work / f"out{n}")]))
                shutil.rmtree(work / f"out{n}")
            base = _run_child(["--baseline", spec["read"]])
            median = statistics.median(r["seconds"] for r in runs)
            print(json.dumps({
                "importer": kind, "rows": runs[0]["rows"], "input_mib": round(size / 2**20, 1),
                "median_s": round(median, 2), "rows_per_s": round(runs[0]["rows"] / median),
                "runs_s": [round(r["seconds"], 2) for r in runs],
                "peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in runs)),
                "rss_after_imports_mib": round(runs[0]["imported_rss_mib"]),
                "baseline_read_s": round(base["seconds"], 2), "load_after": os.getloadavg(),
            }), flush=True)  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
