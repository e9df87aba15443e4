"""Where each caption's time goes in janus match: every phase of one batch, timed separately.

    python -m benchmarks.profile_match [--rows 1000000] [--repeats 3]

Reads the same LAION-style input as bench_match (one file), runs each phase of the shard worker
over every record batch and reports the median over --repeats passes of the total seconds per
phase and its share, plus the floor's phases (lower-case + split) for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def phases(path: Path) -> dict[str, float]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from janus_build.match import matcher as m
    from janus_build.match import native
    from janus_build.match.config import MatchConfig
    from janus_build.match.shard import (
        ShardStats,
        _dictionary_columns,
        build_matcher,
        caption_text,
        match_table_batch,
        output_schema,
    )

    config = MatchConfig(inputs=(str(path),), out="unused", labels="in1k")
    match = build_matcher(config)
    library = native.load()
    out: dict[str, float] = defaultdict(float)

    def timed(name, function, *args):
        started = time.perf_counter()
        result = function(*args)
        out[name] += time.perf_counter() - started
        return result

    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    schema = output_schema(parquet.schema_arrow, add_key=True)
    sink = pa.BufferOutputStream()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=list(_dictionary_columns(schema)))
    batches = parquet.iter_batches(batch_size=65536, use_threads=False)
    while True:
        batch = timed("read + decode parquet", next, batches, None)
        if batch is None:
            break
        text, _ = timed("caption column + reasons", caption_text, batch, ("TEXT",), 100_000)
        timed("floor: lower-case + split", lambda t: pc.utf8_split_whitespace(pc.utf8_lower(t)), text)
        flat, parents = timed("numpy + Arrow path: tokenise (NFKC, lower, markup, ...)", m.tokenize_column, text)
        timed("numpy + Arrow path: token -> term-word id (index_in)", match.table.token_ids, flat)
        order = np.argsort(parents, kind="stable")
        ids = match.table.token_ids(flat)
        timed("numpy path: n-gram lookup + labels", match._resolve, len(text), ids[order], parents[order])
        if library is not None:
            rows, terms = timed(
                "compiled pass: tokens, term-word ids, n-grams (Arrow for the rows it leaves out)",
                match._native_hits,
                library,
                text,
            )
            timed("labels from the hits (numpy)", match._build, len(text), rows, terms)
        keys = pc.binary_join_element_wise(
            m.lit("f", pa.string()), pc.cast(pa.array(range(len(text))), pa.string()), m.lit("-", pa.string())
        )
        labelled = timed(
            "whole batch (match_table_batch)",
            match_table_batch,
            batch,
            match,
            config,
            ("TEXT",),
            ShardStats(),
            keys,
            schema,
        )
        timed("write parquet (zstd, all columns)", writer.write_batch, labelled)
    writer.close()
    return out


def main() -> None:
    from benchmarks.bench_match import make_input

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(args.rows, Path(tmp))[0]
        runs = [phases(path) for _ in range(args.repeats)]
    names = list(runs[0])
    whole = statistics.median(
        r["read + decode parquet"] + r["whole batch (match_table_batch)"] + r["write parquet (zstd, all columns)"]
        for r in runs
    )
    print(
        f"| phase ({args.rows:,} captions, median of {args.repeats}) | seconds | µs / caption | share of read + match + write |"
    )
    print("| --- | ---: | ---: | ---: |")
    for name in names:
        value = statistics.median(r[name] for r in runs)
        print(f"| {name} | {value:.2f} | {value / args.rows * 1e6:.2f} | {value / whole:.0%} |")


if __name__ == "__main__":
    main()
