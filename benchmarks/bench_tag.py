"""Benchmark ``janus tag`` on a 100,000-item queue: server time per decision / next request, page latency.

Usage::

    .venv/bin/python benchmarks/bench_tag.py [--items 100000] [--decisions 2000] [--browser-decisions 200]
                                            [--workdir DIR] [--out benchmarks/results/tag.md]

Measures, on one queue of ``--items`` images (one class holds 90 % of them, half of it already
tagged so the queue's front is deep):

1. library time (in process): ``TagQueue.decide`` and ``TagQueue.next_items`` p50/p95, against
   a baseline in the same run: one bare ``INSERT`` + ``COMMIT`` on the same SQLite settings
   (WAL, ``synchronous=FULL``), the durability floor any crash-safe design pays;
2. server time over HTTP against a real ``janus tag serve`` process (uvicorn): the
   ``Server-Timing`` the app reports and the client round trip, for ``/api/decide``,
   ``/api/next``, ``/img/<key>`` and ``/api/progress``; baseline ``/api/config`` (the framework floor);
3. page-visible latency in headless Chromium: keydown to the next image painted (the page's
   own ``performance.now()`` after the next animation frame), single view and grid pages.
No CPU/GPU choice applies: this is an I/O and latency benchmark.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from janus_build.core.shards import ImageShardWriter
from janus_build.demo.images import class_image
from janus_build.tag.db import default_db_path, open_queue, record_decisions

BIG_CLASS = 1
SMALL_CLASSES = list(range(100, 110))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def fmt(values: list[float]) -> str:
    return f"{pct(values, 50):.2f} | {pct(values, 95):.2f} | {max(values):.2f}"


def build_stage(root: Path, items: int) -> Path:
    """``items`` images: 90 % in one class, the rest spread over 10 classes; 20,000 per shard."""
    small = items // 10 // len(SMALL_CLASSES)
    plan = [(c, j) for c in SMALL_CLASSES for j in range(small)]
    plan = [(BIG_CLASS, j) for j in range(items - len(plan))] + plan
    variants = {c: [class_image(c, v, 96) for v in range(40)] for c in [BIG_CLASS, *SMALL_CLASSES]}
    per_shard = 20_000
    for s in range(0, len(plan), per_shard):
        with ImageShardWriter(root / "images", f"{s // per_shard:05d}") as writer:
            for c, j in plan[s : s + per_shard]:
                writer.write(
                    f"flickr-{c}x{j}",
                    variants[c][j % 40],
                    {
                        "class_id": c,
                        "title": f"photo {j} <b>of</b> class {c}",
                        "tags": "tree leaf",
                        "description": "",
                        "owner": "o",
                        "license": "CC BY 2.0",
                        "url": f"https://example.org/{j}.jpg",
                    },
                )
    return root


def bench_library(stage: Path, decisions: int, pre_tagged: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"decide": [], "next": [], "baseline": []}
    with open_queue(stage) as queue:
        if pre_tagged:
            record_decisions(
                queue, {f"flickr-{BIG_CLASS}x{j}": ("in" if j % 4 else "out") for j in range(pre_tagged)}, "earlier"
            )
        for _ in range(decisions):
            t = time.perf_counter()
            items = queue.next_items(BIG_CLASS, "bench-lib", "alice", 8)
            out["next"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            queue.decide(items[0].key, "in", "alice", "bench-lib")
            out["decide"].append((time.perf_counter() - t) * 1000)
    conn = sqlite3.connect(stage / "baseline.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS d (key TEXT PRIMARY KEY, decision TEXT)")
    for i in range(decisions):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO d VALUES (?, 'in')", (f"k{i}",))
        conn.execute("COMMIT")
        out["baseline"].append((time.perf_counter() - t) * 1000)
    conn.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(stage: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "janus_build", "tag", "serve", str(stage), "--port", str(port), "--annotator", "alice"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/config", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def bench_http(base: str, decisions: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "decide_server",
            "decide_rtt",
            "next_server",
            "next_rtt",
            "img_server",
            "img_rtt",
            "progress_server",
            "config_server",
            "config_rtt",
        )
    }
    who = {"annotator": "bob", "client": "bench-http"}
    with httpx.Client(base_url=base) as client:
        for _ in range(decisions):
            t = time.perf_counter()
            r = client.post("/api/next", json={"class_id": BIG_CLASS, "n": 9, **who})
            out["next_rtt"].append((time.perf_counter() - t) * 1000)
            out["next_server"].append(server_ms(r))
            item = r.json()["items"][0]
            t = time.perf_counter()
            r = client.get(item["image"])
            out["img_rtt"].append((time.perf_counter() - t) * 1000)
            out["img_server"].append(server_ms(r))
            t = time.perf_counter()
            r = client.post("/api/decide", json={"key": item["key"], "decision": "out", **who})
            out["decide_rtt"].append((time.perf_counter() - t) * 1000)
            out["decide_server"].append(server_ms(r))
            if len(out["decide_rtt"]) % 10 == 0:
                out["progress_server"].append(
                    server_ms(client.get("/api/progress", params={"class_id": BIG_CLASS, "annotator": "bob"}))
                )
            t = time.perf_counter()
            r = client.get("/api/config")
            out["config_rtt"].append((time.perf_counter() - t) * 1000)
            out["config_server"].append(server_ms(r))
    return out


def bench_browser(base: str, decisions: int, pages: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(base)
        page.wait_for_selector("body[data-state=ready]", timeout=60000)
        page.wait_for_timeout(500)
        for _ in range(decisions):
            before = page.evaluate("document.body.dataset.currentKey")
            page.keyboard.press("i")
            page.wait_for_function("k => document.body.dataset.currentKey !== k", arg=before)
            page.wait_for_timeout(30)  # a fast human: ~30 decisions per second at most
        single = list(page.evaluate("window.__janus.latencies"))
        page.keyboard.press("g")
        page.wait_for_selector(".cell")
        page.wait_for_timeout(300)
        for _ in range(pages):
            before = page.evaluate("document.body.dataset.pageKeys")
            page.keyboard.press("Enter")
            page.wait_for_function("k => document.body.dataset.pageKeys !== k", arg=before)
            page.wait_for_timeout(150)
        grid = list(page.evaluate("window.__janus.latencies"))[len(single) :]
        browser.close()
    return {"single": single, "grid": grid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--browser-decisions", type=int, default=200)
    parser.add_argument("--grid-pages", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown results here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_tag_"))
    stage = work / "fetch"
    lines = []

    t = time.perf_counter()
    reused = (stage / "images").is_dir()
    if not reused:
        build_stage(stage, args.items)
    build_note = "reused from an earlier run" if reused else f"{time.perf_counter() - t:.1f} s"
    if (stage / "tag").is_dir():  # always time a fresh queue
        import shutil

        shutil.rmtree(stage / "tag")
    (stage / "baseline.sqlite").unlink(missing_ok=True)
    t = time.perf_counter()
    open_queue(stage).close()
    load_s = time.perf_counter() - t
    pre = args.items * 9 // 10 // 2
    lib = bench_library(stage, args.decisions, pre)
    port = free_port()
    server = start_server(stage, port)
    try:
        http = bench_http(f"http://127.0.0.1:{port}", args.decisions)
        page = bench_browser(f"http://127.0.0.1:{port}/", args.browser_decisions, args.grid_pages)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    db_mb = os.path.getsize(default_db_path(stage)) / 1e6
    lines += [
        "# janus tag benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU core(s), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; disk-backed temp dir {work}.",
        f"Queue: {args.items:,} items (class {BIG_CLASS}: {args.items - args.items // 10:,}, plus {len(SMALL_CLASSES)} classes), "
        f"{pre:,} already tagged before timing, overlap 5 %; 96 px JPEGs in 20,000-image shards.",
        f"Stage build {build_note} (not part of tagging); queue creation from the index {load_s:.1f} s; database {db_mb:.1f} MB.",
        "",
        "All times in milliseconds: p50 | p95 | max.",
        "",
        f"## Library (in process, {args.decisions:,} decisions)",
        "",
        "| operation | p50 | p95 | max |",
        "| --- | --- | --- | --- |",
        f"| `next_items` (lease 8, skip decided/leased) | {fmt(lib['next'])} |",
        f"| `decide` (durable commit, history, lease drop) | {fmt(lib['decide'])} |",
        f"| baseline: bare INSERT + COMMIT, same SQLite settings | {fmt(lib['baseline'])} |",
        "",
        f"`decide` p50 is {pct(lib['decide'], 50) / pct(lib['baseline'], 50):.2f}x the bare durable commit.",
        "",
        f"## HTTP against `janus tag serve` (uvicorn, {args.decisions:,} decisions)",
        "",
        "| request | server time (Server-Timing) p50 | p95 | max | client round trip p50 | p95 | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| POST /api/decide | {fmt(http['decide_server'])} | {fmt(http['decide_rtt'])} |",
        f"| POST /api/next (9 items) | {fmt(http['next_server'])} | {fmt(http['next_rtt'])} |",
        f"| GET /img/&lt;key&gt; (from the tar by offset) | {fmt(http['img_server'])} | {fmt(http['img_rtt'])} |",
        f"| GET /api/progress (every 10th) | {fmt(http['progress_server'])} | – | – | – |",
        f"| baseline: GET /api/config (framework floor) | {fmt(http['config_server'])} | {fmt(http['config_rtt'])} |",
        "",
        "## Page-visible latency in headless Chromium",
        "",
        "Keydown to the next image painted (next animation frame after the decision is committed and the",
        "prefetched image is swapped in), measured by the page itself.",
        "",
        "| view | events | p50 | p95 | max |",
        "| --- | --- | --- | --- | --- |",
        f"| single image, key per decision | {len(page['single'])} | {fmt(page['single'])} |",
        f"| grid 5x5, Enter commits 25 | {len(page['grid'])} | {fmt(page['grid'])} |",
        "",
        "Command: `.venv/bin/python benchmarks/bench_tag.py --out benchmarks/results/tag.md`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
