"""``janus fetch`` end to end against the fake Flickr server: shards, report, windows, kill and resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from janus_build import schemas
from janus_build.cli import app
from janus_build.core import shards as images
from janus_build.core.imaging import open_image
from janus_build.demo.flickr_server import FakeFlickr
from janus_build.errors import OutputError, RemoteError
from janus_build.fetch import FetchConfig, run_fetch
from janus_build.fetch.flickr import CREATIVE_COMMONS_LICENSES, MAX_RESULTS
from janus_build.fetch.queries import parse

QUERIES = """
[[class]]
id = 291
name = "lion"
queries = ["lion -statue"]
target = 1000

[[class]]
id = 2
name = "great white shark"
queries = ['"great white shark" -cake']
target = 500
"""


@pytest.fixture(scope="module")
def queries_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("queries") / "q.toml"
    path.write_text(QUERIES)
    return path


@pytest.fixture(scope="module")
def fake():
    with FakeFlickr(
        {291: "lion", 2: "great white shark"},
        queries={291: "lion -statue", 2: '"great white shark" -cake'},
        photos_per_class=1800,
        latency=0.05,
    ) as server:
        yield server


def _read_metadata(out: Path):
    tables = {p.stem: pq.read_table(p) for p in sorted((out / "metadata").glob("*.parquet"))}
    return {int(k): t.to_pylist() for k, t in tables.items()}


def test_queries_file_to_image_shards(fake, queries_file, tmp_path):
    out = tmp_path / "fetch"
    start = len(fake.calls)
    config = FetchConfig(
        out=out,
        queries=queries_file,
        per_class=300,
        api_url=fake.api_url,
        calls_per_hour=10**6,
        threads=8,
        shard_size=250,
        workers=2,
    )
    result = run_fetch(config, credentials=fake.credentials)
    metadata = _read_metadata(out)
    assert sorted(metadata) == [2, 291]
    for class_id, rows in metadata.items():
        assert len(rows) == 300
        schemas.validate(pq.read_table(out / "metadata" / f"{class_id:05d}.parquet"), schemas.FETCH_METADATA, "test")
        query = parse(rows[0]["query"])
        for row in rows:
            assert row["key"] == f"flickr-{row['photo_id']}" and row["class_id"] == class_id
            assert (
                row["license_id"] in CREATIVE_COMMONS_LICENSES and row["license"] and row["owner"] and row["owner_name"]
            )
            assert row["source"] == "flickr" and row["source_id"] == row["photo_id"] and row["url"]
            assert query.explain_drop(row["title"], row["tags"], row["description"]) is None
        assert [r["rank"] for r in rows] == list(range(300))
    # Photos matching both classes are kept for both and flagged.
    shared = {r["key"] for r in metadata[291] if r["also_in_classes"]}
    assert shared and shared == {r["key"] for r in metadata[2] if r["also_in_classes"]}
    # Local application of the query dropped what the looser server let through, naming the rule.
    report = json.loads((out / "report.json").read_text())
    lion = report["classes"]["291"]
    assert any(rule.startswith("exclude:statue") for rule in lion["dropped"])
    assert any(rule.startswith("require:lion") for rule in lion["dropped"])
    dropped = pq.read_table(out / "dropped" / "00291.parquet").to_pylist()
    assert len(dropped) == sum(lion["dropped"].values()) and all(r["dropped_by"] for r in dropped)
    assert lion["available"] == len(fake.search("lion -statue", set(CREATIVE_COMMONS_LICENSES), 1, None, None))
    assert lion["fetched"] == 300 and lion["downloaded"] == 300 and lion["api_pages"] == 1
    assert result.report == report
    # Image shards: unique keys, __key__ == key, metadata columns in the index, images decodable.
    index = images.read_index(out / "images").to_pylist()
    keys = [r["key"] for r in index]
    assert len(keys) == len(set(keys)) == 600 - len(shared)
    assert {r["key"] for r in index} == {r["key"] for rows in metadata.values() for r in rows}
    assert all(r["status"] == "success" and r["license"] and r["owner"] for r in index)
    both = [r for r in index if r["key"] in shared]
    assert all(sorted(r["class_ids"]) == [2, 291] for r in both)
    samples = list(images.iter_samples(out / "images"))
    assert [s["__key__"] for s in samples] == keys
    first = samples[0]
    assert open_image(first["jpg"]).size[0] > 0 and first["json"]["photo_id"] == first["__key__"][len("flickr-") :]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["completed"] and manifest["stage"] == "fetch"
    served = [
        (c["text"], c["min_upload_date"], c["max_upload_date"], c["page"])
        for c in fake.calls[start:]
        if c["fault"] is None
    ]
    assert served and len(served) == len(set(served))
    # A second run does nothing new: every page is done.
    calls = len(fake.calls)
    again = run_fetch(config, credentials=fake.credentials)
    assert len(fake.calls) == calls and again.report["classes"] == report["classes"]
    # Changed result-affecting options are refused.
    with pytest.raises(OutputError, match="per_class"):
        run_fetch(FetchConfig(**{**config.__dict__, "per_class": 301}), credentials=fake.credentials)


def test_more_than_4000_results_are_fetched_through_date_windows(tmp_path):
    with FakeFlickr({7: "cock"}, photos_per_class=9000) as big:
        queries = tmp_path / "q.toml"
        queries.write_text('[[class]]\nid = 7\nname = "cock"\nqueries = ["cock"]\n')
        matching = big.search("cock", set(CREATIVE_COMMONS_LICENSES), 1, None, None)
        assert len(matching) > MAX_RESULTS
        expected = {
            f"flickr-{p.photo_id}"
            for p in matching
            if parse("cock").explain_drop(p.title, p.tags, p.description) is None
        }
        out = tmp_path / "big"
        result = run_fetch(
            FetchConfig(
                out=out,
                queries=queries,
                per_class=20_000,
                api_url=big.api_url,
                calls_per_hour=10**6,
                metadata_only=True,
            ),
            credentials=big.credentials,
        )
        rows = _read_metadata(out)[7]
        assert {r["key"] for r in rows} == expected  # every matching photo, none twice
        assert len(rows) == len(expected)
        lion = result.report["classes"]["7"]
        assert lion["available"] == len(matching) and lion["windows"] > 1 and lion["downloaded"] is None
        assert not big.repeated_pages()
        windows = [c for c in big.calls if c["min_upload_date"] is not None]
        assert windows and all(c["page"] <= MAX_RESULTS // 500 for c in big.calls)
        assert not (out / "images").exists()


def _done_requests(state_path: Path):
    db = sqlite3.connect(state_path)
    try:
        bounds = {
            (c, q, p): (lo, hi)
            for c, q, p, lo, hi in db.execute("SELECT class_id, query_index, path, lo, hi FROM windows")
        }
        pages = db.execute("SELECT class_id, query_index, path, page FROM pages").fetchall()
    finally:
        db.close()
    texts = {291: "lion -statue", 2: '"great white shark" -cake'}
    return {(texts[c], *bounds[(c, q, p)], page) for c, q, p, page in pages}


def test_kill_and_resume(fake, queries_file, tmp_path):
    env = {**os.environ, "FLICKR_API_KEY": fake.api_key, "FLICKR_API_SECRET": fake.api_secret, "NO_COLOR": "1"}
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "janus_build",
        "-vv",
        "fetch",
        "--out",
        str(out),
        "--queries",
        str(queries_file),
        "--per-class",
        "1200",
        "--api-url",
        fake.api_url,
        "--calls-per-hour",
        "1000000",
        "--metadata-only",
    ]
    fake.latency = 0.4
    try:
        log = open(tmp_path / "run1.log", "w")
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        state = out / "state.sqlite"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                if len(_done_requests(state)) >= 2:
                    break
            except (sqlite3.Error, KeyError):
                continue
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        log.close()
        assert process.returncode == -signal.SIGKILL
        done_at_kill = _done_requests(state)
        assert 2 <= len(done_at_kill) < 6  # killed mid-run
        calls_at_kill = len(fake.calls)
        time.sleep(0.5)  # let the in-flight request (if any) be recorded
        calls_at_kill = len(fake.calls)
    finally:
        fake.latency = 0.05
    resumed = subprocess.run(args[:-1], env=env, capture_output=True, text=True, timeout=300)  # and download this time
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = [c for c in fake.calls[calls_at_kill:] if c["fault"] is None]
    asked_again = {(c["text"], c["min_upload_date"], c["max_upload_date"], c["page"]) for c in after} & done_at_kill
    assert not asked_again
    # Same final set as an uninterrupted run.
    reference = tmp_path / "reference"
    run_fetch(
        FetchConfig(
            out=reference,
            queries=queries_file,
            per_class=1200,
            api_url=fake.api_url,
            calls_per_hour=10**6,
            metadata_only=True,
        ),
        credentials=fake.credentials,
    )
    got, want = _read_metadata(out), _read_metadata(reference)
    for class_id in want:
        assert [r["key"] for r in got[class_id]] == [r["key"] for r in want[class_id]]
    index = images.read_index(out / "images")
    assert index.num_rows == len({r["key"] for rows in got.values() for r in rows})
    # The key and secret never reach an output file or the logs.
    secrets = (fake.api_key.encode(), fake.api_secret.encode())
    texts = [resumed.stdout.encode(), resumed.stderr.encode(), (tmp_path / "run1.log").read_bytes()]
    for path in out.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes())
    assert not [t for t in texts for s in secrets if s in t]
    assert "available" in resumed.stdout and "lion" in resumed.stdout  # the report table
    # img2dataset's own output (per-shard lines, tqdm bars) goes to its log, not the terminal.
    terminal = resumed.stdout + resumed.stderr
    assert "images per sec" not in terminal and "it/s]" not in terminal
    assert "images per sec" in (out / "_download" / "img2dataset.log").read_text()


def _marked_processes(marker: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment holds ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_killed_or_interrupted_download_leaves_no_process_behind(fake, queries_file, tmp_path, sig):
    marker = f"janus-fetch-test-{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "FLICKR_API_KEY": fake.api_key, "FLICKR_API_SECRET": fake.api_secret, "JANUS_MARK": marker}
    # Ctrl-C as a terminal delivers it: a job started in the background of a non-interactive shell
    # (a CI runner's `cmd &`) inherits SIGINT ignored, and Python then keeps it ignored.
    janus = "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    janus += "runpy.run_module('janus_build', run_name='__main__', alter_sys=True)"
    args = [sys.executable, "-c", janus, "fetch", "--out", str(tmp_path / "o"), "--queries", str(queries_file)]
    args += ["--per-class", "60", "--api-url", fake.api_url, "--calls-per-hour", "1000000"]
    # One shard of 100 slow images takes img2dataset's workers ~25 s: they must not finish it.
    args += ["--processes", "2", "--threads", "2", "--shard-size", "100"]
    fake.image_latency = 0.5
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if any("spawn_main" in cmd for cmd in _marked_processes(marker).values()):
                break  # img2dataset's pool workers are running
            time.sleep(0.2)
        assert process.poll() is None, "the download finished before it could be killed"
        os.kill(process.pid, sig)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10  # the old code's workers lived on for ~25 s
        while _marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _marked_processes(marker)
        assert not left, left
    finally:
        fake.image_latency = 0.0
        for pid in _marked_processes(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_invalid_key_is_one_clear_line(fake, queries_file, tmp_path, monkeypatch):
    monkeypatch.setenv("FLICKR_API_KEY", "not-the-key-123")
    monkeypatch.setenv("FLICKR_API_SECRET", "nope-secret")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "janus_build",
            "fetch",
            "--out",
            str(tmp_path / "o"),
            "--queries",
            str(queries_file),
            "--api-url",
            fake.api_url,
            "--metadata-only",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "FLICKR_API_KEY" in result.stderr and "error 100" in result.stderr
    assert "Traceback" not in result.stderr and "not-the-key-123" not in result.stderr + result.stdout


def test_cli_validates_options(fake, queries_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["fetch", "--out", str(tmp_path / "o"), "--queries", str(queries_file), "--classes", "999"],
        env={"FLICKR_API_KEY": "k-123456", "FLICKR_API_SECRET": "s"},
    )
    assert result.exit_code != 0 and "--classes: 999" in str(result.exception or result.output)
    result = runner.invoke(app, ["fetch", "--out", str(tmp_path / "o"), "--licenses", "1,99"])
    assert result.exit_code != 0 and "--licenses" in str(result.exception or result.output)


def test_a_failed_run_releases_the_directory(fake, queries_file, tmp_path):
    out = tmp_path / "failed"
    fake.inject("100")  # the first search call: invalid key, a RemoteError
    config = FetchConfig(out=out, queries=queries_file, api_url=fake.api_url, metadata_only=True, calls_per_hour=10**6)
    with pytest.raises(RemoteError, match="error 100"):
        run_fetch(config, credentials=fake.credentials)
    # Another process can take the directory's lock now (it was held until exit before).
    take = "import sys; from janus_build.core.lock import StageLock; StageLock(sys.argv[1], sys.argv[2], 'x').acquire()"
    taken = subprocess.run(
        [sys.executable, "-c", take, str(out / "_lock"), str(out)], capture_output=True, text=True, timeout=60
    )
    assert taken.returncode == 0, taken.stderr[-500:]
