"""Assemble docs/benchmarks.md from benchmarks/results/<stage>.md (each written by its benchmark).

python scripts/build_benchmarks_page.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = [
    ("fetch", "janus fetch"),
    ("tag", "janus tag"),
    ("caption", "janus caption"),
    ("match", "janus match"),
    ("balance", "janus balance"),
    ("dedup", "janus dedup"),
    ("import", "janus import"),
    ("label", "janus label"),
    ("train", "janus train"),
]

INTRO = """# Benchmarks

Every figure comes from a script in `benchmarks/` run on the machine named in its section, and
is given where possible as a ratio against a baseline measured in the same run (an I/O floor,
the authors' algorithm, a bare library call, or the model alone). None of them is asserted in
the test suite. Re-run one with `python -m benchmarks.bench_<stage>` (see each script's
docstring); `python scripts/build_benchmarks_page.py` rebuilds this page from
`benchmarks/results/`.

The development machine has 2 x86-64 cores and 24 GB and no GPU; it was shared with other jobs
while most figures were taken, so absolute speeds are noisy and the same-run ratios are the
figures to trust. **GPU figures** (BLIP captioning at bf16, ResNet-50 training from shards) are
not yet measured: no GPU was lent to the session that wrote these benchmarks. The exact
commands are in the caption and train sections.

Summary:

| stage | headline |
| --- | --- |
| match | 1M real-LAION-style captions, 1000 classes, three full runs (median of 3 per case, every table's cases taking turns) on a machine slower than last round's, load about 1 (the benchmark itself): one core 1.34x a floor streamed in batches (10M: 1.18x), ~3x without the compiled matcher; 1,000 small files 1.23x one file (packed, read ahead on the second core); peak RSS flat (~204 MB for one 10M-row file, ~209 MB for 1 GiB of 4k-character captions); start-up +0.15 s CPU over bare pyarrow; Spark local mode 2.82x the local engine (2.75x-2.98x; 1.08x-1.21x on 10M); 2 workers 2.09x one on 10M captions, 1.67x on 2M (~0.3 s of imports and planning are serial), 1.80x on 2M whose last file holds a quarter of them (workers take the largest shards first) |
| fetch | 2.2-3.0 API calls per 1,000 photos (ideal 2.0 at 500 per page); downloads 3.7x a sequential loop |
| tag | 100,000-item queue: p95 9.5 ms per decision, 2.8 ms per next-items request; key press to next image p50 16 ms |
| balance | plan + resharder with image validation: 505 samples/s written vs 624 before the change, same run, load 9-12 (the header check is ~14% of the write); a resume after losing a shard re-plans in 1.1 s instead of 3.2 s. Quiet-machine figure from the earlier round: ~2,700-3,000 samples/s |
| caption / train / label | CPU harness figures only (model-bound); GPU commands ready, no GPU was lent to this session |
| dedup | contamination check: recall 0.998 / precision 1.000 on 2,400 transformed copies of 200 images and 2,000 distinct negatives (whole-image hashes alone: recall 0.758); ~420 images/s per core, 0.71x a bare decode+hash loop; CLIP pass and GPU not measured ([dedup.md](dedup.md)) |
| import | 1M-row files in the published formats, machine at load 7-9: laion 180k rows/s, openimages 55k, imagenet-captions 50k, yfcc 18k; memory the same at 200k and 1M rows (openimages: grows with the images selected) |
"""


def demote(text: str) -> str:
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        lines.append("#" + line if line.startswith("#") and not in_code else line)
    return "\n".join(lines)


def main() -> None:
    parts = [INTRO]
    for stage, title in ORDER:
        path = ROOT / "benchmarks" / "results" / f"{stage}.md"
        if not path.is_file():
            continue
        body = path.read_text().strip().splitlines()
        if body and body[0].startswith("# "):
            body = body[1:]
        parts.append(
            f"## {title}\n\nFrom `benchmarks/results/{stage}.md` (`benchmarks/bench_{stage}.py`).\n\n"
            + demote("\n".join(body)).strip()
            + "\n"
        )
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
