"""Benchmark janus match against its floor, in memory, over many shards, on workers, on Spark.

    python -m benchmarks.bench_match [--rows 1000000] [--repeats 3] [--out benchmarks/results/match.md]

Every case runs --repeats times (default 3) in a fresh child process, each table's cases taking
turns (run 1 of every case, then run 2, ...); the tables give the median
(and the range) of wall time, CPU time (user + sys, children included) and peak RSS (VmHWM),
each case's ratio to a baseline measured in the same run, and the load average before and
after (the machine is shared: CPU-time ratios are the figures to trust when it is loaded).

* floor: read the table, lower-case and split its caption column, write it back with one int
  column (zstd, as janus match writes), whole-table and streamed in 65,536-row batches (a
  stricter baseline: the whole table's page faults make that floor slow and bimodal); janus
  match, 1 worker, 1000 classes, openai, sc, with and without its compiled matcher;
* many small shards: --small-shards files of --rows / --small-shards rows (packed, and with --pack-rows 0) vs
  the same rows in one file;
* --workers 1 vs 2 (their runs taking turns) on --scaling-rows and --scaling-big-rows captions in
  16 equal files, and on --scaling-rows in 16 files whose last holds a quarter of the rows: the
  whole stage, and its matching phase alone (the shards; imports, planning and the summary are
  serial);
* memory: one --big-rows-row file written as a single row group, and --long-mib MiB of 4,000-
  character captions, against a file a tenth the size (flat memory: the same peak);
* Spark local mode (local[1]) vs the local engine (their runs taking turns) on --spark-rows captions, on a fresh janus
  cache: the first run (it writes the driver JVM's class-data archive) apart, then runs that map
  it, and runs without it (JANUS_SPARK_CDS=0);
* start-up: a 1-row janus match run vs a bare ``import pyarrow.parquet, pyarrow.compute``;
* the authors' algorithm (benchmarks/authors_reference.py) on the 1,000 real LAION captions,
  and its agreement with janus match on them.

Captions: the 1,000 real LAION captions of ../shared/data, repeated, a third of them given an
extra random word so the vocabulary has a long tail as real data does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT.parent / "shared" / "data" / "laion_sample_1000.parquet"
NOTES_MARK = "<!-- notes: kept by bench_match.py when it rewrites the figures above -->"


def base_table(rows: int):
    """``rows`` LAION-style rows (URL, TEXT), built in Arrow (a 10M-row table in seconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = pq.read_table(SAMPLE)
    texts = [t or "" for t in base.column("TEXT").to_pylist()]
    rng = random.Random(0)
    unit = 100_000
    block = [
        f"{texts[i % 1000]} {''.join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))}"
        if rng.random() < 0.33
        else texts[i % 1000]
        for i in range(min(rows, unit))
    ]
    urls = [base.column("URL")[i % 1000].as_py() for i in range(len(block))]
    table = pa.table({"URL": urls, "TEXT": block})
    return pa.concat_tables([table] * (-(-rows // len(block)))).slice(0, rows)


def make_input(
    rows: int, path: Path, shards: int = 1, row_group_size: int = 65536, last_share: float = 0.0
) -> list[Path]:
    """``rows`` captions in ``shards`` files of equal rows, or the last file ``last_share`` of them."""
    import pyarrow.parquet as pq

    path.mkdir(parents=True, exist_ok=True)
    table = base_table(rows)
    last = int(rows * last_share) if last_share else -(-rows // shards)
    per = -(-(rows - last) // (shards - 1)) if last_share else last
    starts = [s * per for s in range(shards)]
    paths = []
    for s, start in enumerate(starts):
        p = path / f"part-{s:05d}.parquet"
        pq.write_table(table.slice(start, per if s < shards - 1 else rows - start), p, row_group_size=row_group_size)
        paths.append(p)
    return paths


def make_long_captions(mib: int, path: Path, chars: int = 4000) -> Path:
    """``mib`` MiB of ``chars``-character captions in one file (row groups of 64 MiB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = [t or "" for t in pq.read_table(SAMPLE).column("TEXT").to_pylist()]
    rng = random.Random(1)
    captions = []
    for _ in range(1000):
        words = []
        while sum(len(w) + 1 for w in words) < chars:
            words += rng.choice(base).split() or ["x"]
        captions.append(" ".join(words)[:chars])
    rows = mib * 2**20 // chars
    table = pa.table({"TEXT": captions})
    table = pa.concat_tables([table] * (-(-rows // 1000))).slice(0, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=max(1, 64 * 2**20 // chars))
    return path


CHILD = r"""
import json, os, resource, sys, time
case, args = sys.argv[1], json.loads(sys.argv[2])
if args.get("numpy_path"):  # the matcher without its compiled matcher
    os.environ["JANUS_NATIVE"] = "0"
if args.get("pin"):  # "one core": the floor's pyarrow threads and janus share one CPU
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
t0 = time.perf_counter()
rows = 0
phase = {}
if case == "floor":
    import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
    table = pq.read_table(args["input"])
    tokens = pc.utf8_split_whitespace(pc.utf8_lower(table.column("TEXT")))
    n = pc.list_value_length(tokens).cast(pa.int32())
    pq.write_table(table.append_column("n", n), args["out"], compression="zstd")
    rows = table.num_rows
elif case == "floor-stream":  # the same work in 65,536-row batches, as janus match reads and writes
    import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
    writer = None
    for batch in pq.ParquetFile(args["input"]).iter_batches(batch_size=65536):
        n = pc.list_value_length(pc.utf8_split_whitespace(pc.utf8_lower(batch.column("TEXT")))).cast(pa.int32())
        out = pa.RecordBatch.from_arrays([*batch.columns, n], names=[*batch.schema.names, "n"])
        writer = writer or pq.ParquetWriter(args["out"], out.schema, compression="zstd")
        writer.write_batch(out)
        rows += batch.num_rows
    writer.close()
elif case == "bare":
    import pyarrow, pyarrow.parquet, pyarrow.compute
elif case == "match":
    import shutil
    shutil.rmtree(args["out"], ignore_errors=True)  # each run starts on an empty --out (not timed)
    t0 = time.perf_counter()
    from janus_build.match import MatchConfig, run_match
    if args.get("phases"):  # time the shards alone (imports, planning and the summary are serial)
        import janus_build.match.engine as engine
        def timed(*a, _run=engine.run_local):
            started = time.perf_counter()
            try:
                return _run(*a)
            finally:
                phase["match_seconds"] = time.perf_counter() - started
        engine.run_local = timed
    stats = run_match(MatchConfig(inputs=tuple(args["inputs"]), out=args["out"], labels="in1k", classnames="openai",
                                  strategy="sc", workers=args.get("workers", 1), engine=args.get("engine", "local"),
                                  spark_master=args.get("master"), plot=False, overwrite=True,
                                  pack_rows=args.get("pack_rows", 65536)))
    rows = stats["rows"]
elif case == "authors":
    import pyarrow.parquet as pq
    from nltk.stem import WordNetLemmatizer
    sys.path.insert(0, args["root"])
    from benchmarks.authors_reference import clean, subset_match
    from janus_build.labels import load_term_set
    names = [load_term_set("openai").names[i] for i in range(1000)]
    lemmatize = WordNetLemmatizer().lemmatize
    lemmatize("warm")  # load WordNet outside the timing
    texts = pq.read_table(args["input"]).column("TEXT").to_pylist()[: args["n"]]
    t0 = time.perf_counter()
    labels = [subset_match(clean(t), names, lemmatize) for t in texts]
    rows = len(texts)
    json.dump(labels, open(args["labels_out"], "w"))
elapsed = time.perf_counter() - t0
own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "seconds": elapsed, "cpu": cpu, "peak_rss_mb": hwm_kb / 1024, **phase}))
"""


def child(case: str, env: dict | None = None, **args) -> dict:
    env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    started = __import__("time").perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, case, json.dumps(args)], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if done.returncode:
        raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = __import__("time").perf_counter() - started  # interpreter start included
    return result


def summarise(runs: list[dict]) -> dict:
    """The median and range of each figure of a case's runs."""
    import statistics

    out = {"rows": runs[0]["rows"], "runs": len(runs)}
    for name in ("seconds", "cpu", "peak_rss_mb", "process_seconds", "match_seconds"):
        values = [r[name] for r in runs if name in r]
        if not values:
            continue
        out[name] = statistics.median(values)
        out[f"{name}_range"] = (min(values), max(values))
    return out


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f}"


def agreement(labels_path: Path, n: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from janus_build.labels import load_label_set, load_term_set, terms_for
    from janus_build.match.matcher import Matcher, TermTable

    theirs = json.loads(labels_path.read_text())
    matcher = Matcher(TermTable(terms_for(load_label_set("in1k"), load_term_set("openai"))))
    texts = pq.read_table(SAMPLE).column("TEXT").to_pylist()[:n]
    ours = matcher.choose(matcher.match(pa.array(texts, pa.string())), "sc").to_pylist()
    same = sum(1 for a, b in zip(ours, theirs) if a == b)
    both = sum(1 for a, b in zip(ours, theirs) if a >= 0 and b >= 0)
    same_when_both = sum(1 for a, b in zip(ours, theirs) if a >= 0 and b >= 0 and a == b)
    only_ours = sum(1 for a, b in zip(ours, theirs) if a >= 0 > b)
    only_theirs = sum(1 for a, b in zip(ours, theirs) if b >= 0 > a)
    examples = [(t, a, b) for t, a, b in zip(texts, ours, theirs) if a != b][:12]
    return {
        "n": len(texts),
        "same_label": same,
        "both_labelled": both,
        "same_when_both": same_when_both,
        "only_janus": only_ours,
        "only_authors": only_theirs,
        "labelled_janus": sum(1 for a in ours if a >= 0),
        "labelled_authors": sum(1 for b in theirs if b >= 0),
        "examples": examples,
    }


def row(name: str, r: dict, base: dict | None = None, unit: str = "captions") -> str:
    """One table row: per-second figures from the median wall and CPU times, ratios to ``base``."""
    wall = f"{r['seconds']:.2f} ({r['seconds_range'][0]:.2f}-{r['seconds_range'][1]:.2f})"
    cpu = f"{r['cpu']:.2f}"
    ratio = ""
    if base is not None:
        ratio = f"{r['seconds'] / base['seconds']:.2f}x / {r['cpu'] / base['cpu']:.2f}x"
    rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] else ""
    return f"| {name} | {rate} | {wall} | {cpu} | {r['peak_rss_mb']:.0f} | {ratio} |"


HEADER = [
    "| case | captions/s (wall) | wall s, median (range) | CPU s | peak RSS MB | vs baseline: wall / CPU |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
]


def run_cases(args: argparse.Namespace, tmp: Path) -> tuple[list[str], dict]:
    lines: list[str] = []
    n = args.repeats
    one = make_input(args.rows, tmp / "one")
    on_floor = dict(input=str(one[0]), out=str(tmp / "floor.parquet"))
    on_match = dict(inputs=[str(one[0])], out=str(tmp / "m1"))
    floor, stream, match, numpy_path, free_floor, free_match = interleaved(
        n,
        [
            dict(case="floor", pin=True, **on_floor),
            dict(case="floor-stream", pin=True, **on_floor),
            dict(pin=True, **on_match),
            dict(pin=True, numpy_path=True, **on_match),
            dict(case="floor", **on_floor),
            on_match,
        ],
    )
    lines += ["### Throughput, one core", "", f"{args.rows:,} captions in one file.", ""]
    lines += ["Both pinned to one CPU (`sched_setaffinity`): pyarrow's reader threads would otherwise give the floor"]
    lines += ["a second core. Unpinned figures, same run, below the table.", "", *HEADER]
    lines += [row("floor (baseline): read, lower-case + split, write with one int column", floor)]
    lines += [row("janus match, 1 worker (whole stage)", match, floor)]
    lines += [row("janus match without the compiled matcher (JANUS_NATIVE=0)", numpy_path, floor)]
    lines += [row("floor streamed in 65,536-row batches (a second baseline)", stream), ""]
    lines += [
        f"Against the streamed floor: janus match {match['seconds'] / stream['seconds']:.2f}x wall "
        f"({match['cpu'] / stream['cpu']:.2f}x CPU), without the compiled matcher "
        f"{numpy_path['seconds'] / stream['seconds']:.2f}x.",
        "",
    ]
    lines += [
        f"Unpinned: floor {free_floor['seconds']:.2f} s wall ({free_floor['cpu']:.2f} s CPU), janus match "
        f"{free_match['seconds']:.2f} s ({free_match['cpu']:.2f} s CPU): "
        f"{free_match['seconds'] / free_floor['seconds']:.2f}x wall, {free_match['cpu'] / free_floor['cpu']:.2f}x CPU.",
        "",
    ]
    small = make_input(args.rows, tmp / "small", shards=args.small_shards)
    on_small = dict(inputs=[str(tmp / "small")], out=str(tmp / "m2"))
    free_match, many, unpacked = interleaved(n, [on_match, on_small, dict(pack_rows=0, **on_small)])
    label = f"{args.small_shards:,} files of {args.rows // args.small_shards:,} rows"
    lines += ["### Many small shards", "", *HEADER, row("one file (baseline; unpinned, as below)", free_match)]
    lines += [row(f"{label} (packed: the default)", many, free_match)]
    lines += [row(f"{label}, --pack-rows 0 (one shard per file)", unpacked, free_match), ""]
    del small
    lines += worker_cases(args, tmp, n)
    lines += memory_cases(args, tmp, n)
    lines += spark_cases(args, tmp, n)
    tiny = make_input(1, tmp / "tiny")
    bare, start = interleaved(n, [dict(case="bare"), dict(inputs=[str(tiny[0])], out=str(tmp / "st"))])
    lines += ["### Start-up", "", "| case | process wall s | CPU s |", "| --- | ---: | ---: |"]
    lines += [
        f"| python -c 'import pyarrow.parquet, pyarrow.compute' (baseline) | {bare['process_seconds']:.2f} | {bare['cpu']:.2f} |"
    ]
    lines += [
        f"| janus match on a 1-row file (library call, 1000 classes) | {start['process_seconds']:.2f} | {start['cpu']:.2f} |"
    ]
    lines += [
        "",
        f"Start-up above a bare pyarrow import: {start['cpu'] - bare['cpu']:.2f} s CPU, {start['process_seconds'] - bare['process_seconds']:.2f} s wall.",
        "",
    ]
    return lines, {"floor": floor, "match": match}


def worker_cases(args: argparse.Namespace, tmp: Path, n: int) -> list[str]:
    """--workers 1 against 2 on 16 files: equal ones of args.scaling_rows and of args.scaling_big_rows
    captions, and args.scaling_rows captions whose last file holds a quarter of them."""
    lines = ["### Workers", ""]
    cases = [(args.scaling_rows, 0.0), (args.scaling_big_rows, 0.0), (args.scaling_rows, 0.25)]
    for rows, last_share in cases:
        if not rows:
            continue
        make_input(rows, tmp / "scaling", shards=16, last_share=last_share)
        variants = [dict(workers=1), dict(workers=2)]
        w1, w2 = interleaved(n, variants, inputs=[str(tmp / "scaling")], out=str(tmp / "w"), phases=True)
        shape = f"the last holding {last_share:.0%} of them" if last_share else "of equal rows"
        lines += [f"{rows:,} captions in 16 files, {shape}.", "", *HEADER]
        lines += [row("--workers 1 (baseline)", w1), row("--workers 2", w2, w1)]
        serial = w1["seconds"] - w1["match_seconds"]
        lines += [
            "",
            f"Speed-up of 2 workers (wall, whole stage): {w1['seconds'] / w2['seconds']:.2f}x. "
            f"Matching phase alone (the shards, from the first handed out to the last done): "
            f"{w1['match_seconds']:.2f} s against {w2['match_seconds']:.2f} s, "
            f"{w1['match_seconds'] / w2['match_seconds']:.2f}x; the serial rest (imports, planning, summary) "
            f"{serial:.2f} s of the one-worker run.",
            "",
        ]
        shutil.rmtree(tmp / "scaling")
    return lines


def spark_cases(args: argparse.Namespace, tmp: Path, n: int) -> list[str]:
    """Spark local[1] against the local engine on args.spark_rows and args.spark_big_rows captions."""
    if not args.spark_rows:
        return []
    make_input(args.spark_rows, tmp / "spark", shards=4)
    on_local = dict(inputs=[str(tmp / "spark")], out=str(tmp / "sl"))
    on_spark = dict(inputs=[str(tmp / "spark")], out=str(tmp / "ss"), engine="spark", master="local[1]")
    cache = {"JANUS_CACHE_DIR": str(tmp / "cache"), "JANUS_SPARK_CDS": "1"}  # a fresh janus cache
    first = child("match", env=cache, **on_spark)  # writes the driver JVM's class-data archive
    no_cds = {**cache, "JANUS_SPARK_CDS": "0"}
    local, spark, no_archive = interleaved(n, [on_local, {**on_spark, "env": cache}, {**on_spark, "env": no_cds}])
    lines = ["### Spark local mode", "", f"{args.spark_rows:,} captions in 4 files; local[1].", "", *HEADER]
    lines += [
        row("local engine, 1 worker (baseline)", local),
        row("--engine spark (JVM start-up included, class-data archive mapped)", spark, local),
        row("--engine spark, JANUS_SPARK_CDS=0 (no archive)", no_archive, local),
        "",
        f"The first Spark run on a fresh cache, which records and writes the archive: {first['seconds']:.1f} s "
        f"({first['seconds'] / local['seconds']:.1f}x the local engine); the later runs above map it.",
        "",
    ]
    shutil.rmtree(tmp / "spark")
    if not args.spark_big_rows:
        return lines
    make_input(args.spark_big_rows, tmp / "spark-big", shards=4)  # 10x the rows: fixed cost against per row
    big = [str(tmp / "spark-big")]
    big_local, big_spark = interleaved(n, [{**on_local, "inputs": big}, {**on_spark, "inputs": big, "env": cache}])
    lines += [f"{args.spark_big_rows:,} captions in 4 files; local[1].", "", *HEADER]
    lines += [row("local engine, 1 worker (baseline)", big_local)]
    lines += [row("--engine spark (JVM start-up included)", big_spark, big_local), ""]
    lines += [
        f"Spark's time above the local engine's: {spark['seconds'] - local['seconds']:.1f} s on "
        f"{args.spark_rows:,} captions, {big_spark['seconds'] - big_local['seconds']:.1f} s on "
        f"{args.spark_big_rows:,}.",
        "",
    ]
    shutil.rmtree(tmp / "spark-big")
    return lines


def interleaved(repeats: int, variants: list[dict], **args) -> list[dict]:
    """The median of ``repeats`` runs of each variant, the variants' runs taking turns.

    A variant is ``child``'s arguments (``case``, default "match", ``env`` and the case's own)
    over ``args``. Taking turns puts drift in the machine's speed on a case and its baseline alike.
    """
    runs = [[] for _ in variants]
    for _ in range(repeats):
        for kept, variant in zip(runs, variants):
            variant = {**args, **variant}
            kept.append(child(variant.pop("case", "match"), **variant))
    return [summarise(kept) for kept in runs]


def memory_cases(args: argparse.Namespace, tmp: Path, n: int) -> list[str]:
    small = make_input(args.big_rows // 10, tmp / "big10", row_group_size=args.big_rows // 10)
    big = make_input(args.big_rows, tmp / "big", row_group_size=args.big_rows)
    on_floor = dict(input=str(big[0]), out=str(tmp / "floor-big.parquet"), pin=True)
    r_small, r_big, floor_big, stream_big = interleaved(
        n,
        [
            dict(inputs=[str(small[0])], out=str(tmp / "b10"), pin=True),
            dict(inputs=[str(big[0])], out=str(tmp / "b"), pin=True),
            dict(case="floor", **on_floor),
            dict(case="floor-stream", **on_floor),
        ],
    )
    (tmp / "floor-big.parquet").unlink()
    for path in (*small, *big):
        path.unlink()
    long_small = make_long_captions(max(1, args.long_mib // 10), tmp / "long10" / "long.parquet")
    long_big = make_long_captions(args.long_mib, tmp / "long" / "long.parquet")
    l_small, l_big = interleaved(
        n, [dict(inputs=[str(long_small)], out=str(tmp / "l10")), dict(inputs=[str(long_big)], out=str(tmp / "l"))]
    )
    long_small.unlink()
    long_big.unlink()
    return [
        "### Throughput, one core, 10M captions",
        "",
        f"{args.big_rows:,} captions in one file (one row group); both pinned to one CPU.",
        "",
        *HEADER,
        row("floor (baseline): read, lower-case + split, write with one int column", floor_big),
        row("janus match, 1 worker (whole stage)", r_big, floor_big),
        row("floor streamed in 65,536-row batches (a second baseline)", stream_big),
        "",
        f"Against the streamed floor: {r_big['seconds'] / stream_big['seconds']:.2f}x wall, "
        f"{r_big['cpu'] / stream_big['cpu']:.2f}x CPU.",
        "",
        "### Memory (flat in input size and caption length)",
        "",
        *HEADER,
        row(f"{args.big_rows // 10:,} rows, one row group (baseline)", r_small),
        row(f"{args.big_rows:,} rows, one row group", r_big, r_small),
        row(f"{max(1, args.long_mib // 10)} MiB of 4,000-character captions (baseline)", l_small),
        row(f"{args.long_mib} MiB of 4,000-character captions", l_big, l_small),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small-shards", type=int, default=1000)
    parser.add_argument(
        "--scaling-rows", type=int, default=2_000_000, help="rows (in 16 shards) for the --workers runs"
    )
    parser.add_argument(
        "--scaling-big-rows",
        type=int,
        default=10_000_000,
        help="rows (in 16 shards) of a second --workers case; 0 skips",
    )
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="rows of the single-file memory case")
    parser.add_argument("--long-mib", type=int, default=1024, help="MiB of 4k-character captions (memory case)")
    parser.add_argument("--spark-rows", type=int, default=1_000_000, help="0 skips the Spark case")
    parser.add_argument("--spark-big-rows", type=int, default=10_000_000, help="0 skips the larger Spark case")
    parser.add_argument("--authors-n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "match.md")
    args = parser.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lines, results = run_cases(args, tmp)
        authors = child(
            "authors", input=str(SAMPLE), n=args.authors_n, root=str(ROOT), labels_out=str(tmp / "authors.json")
        )
        agree = agreement(tmp / "authors.json", args.authors_n)
    load_after = load()
    match = results["match"]
    head = [
        "# janus match benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}.",
        f"Load average (1 / 5 min) before: {load_before}; after: {load_after}. Median of {args.repeats} runs per case.",
        "Captions: the 1,000 real LAION captions repeated, a third with an extra random word; 1000 ImageNet classes,",
        "`openai` terms, `sc`. Ratios are to the baseline row of the same table, measured in the same run.",
        "",
    ]
    rate = args.authors_n / authors["seconds"]
    tail = [
        f"Authors' algorithm (per caption, NLTK WordNet): {rate:,.0f} captions/s; janus match (1 worker) is "
        f"{(match['rows'] / match['seconds']) / rate:,.0f}x faster.",
        "",
        "## Agreement with the authors' algorithm on the 1,000 real LAION captions (sc, in1k, openai)",
        "",
        f"- same label (including both unlabelled): {agree['same_label']} / {agree['n']}",
        f"- labelled by janus match: {agree['labelled_janus']}; by the authors' algorithm: {agree['labelled_authors']}",
        f"- both labelled: {agree['both_labelled']}, of which the same class: {agree['same_when_both']}",
        f"- labelled only by janus match: {agree['only_janus']}; only by the authors': {agree['only_authors']}",
        "",
        "First differences (caption, janus, authors):",
        "",
    ]
    for text, ours, theirs in agree["examples"]:
        tail.append(f"- `{(text or '')[:90]!s}` -> janus {ours}, authors {theirs}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    notes = ""  # the hand-written analysis below the figures survives a re-run
    if args.out.is_file() and NOTES_MARK in args.out.read_text():
        notes = "\n" + NOTES_MARK + args.out.read_text().split(NOTES_MARK, 1)[1]
    args.out.write_text("\n".join(head + lines + tail) + "\n" + notes)
    print("\n".join(head + lines + tail))


if __name__ == "__main__":
    main()
