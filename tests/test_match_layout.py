"""janus match on the core: keys unique across inputs, markers and changed inputs, write errors,
workers that die with the run, and an output directory every parquet reader opens as-is."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.core.keys import path_key, row_key
from janus_build.errors import ConfigError, InputError, SchemaError
from janus_build.match import MatchConfig, run_match


def write(path: Path, **columns) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def two_laion_parts(tmp_path: Path, rows: int = 500) -> Path:
    """LAION's layout: 2B-en/part-00000.parquet and 2B-multi/part-00000.parquet (same file names)."""
    root = tmp_path / "laion"
    for sub in ("2B-en", "2B-multi"):
        write(root / sub / "part-00000.parquet", TEXT=[f"a goose {i}" for i in range(rows)])
    return root


# --- keys ----------------------------------------------------------------------------------
def test_keys_unique_across_inputs_with_the_same_file_name(tmp_path):
    root = two_laion_parts(tmp_path)
    run_match(MatchConfig(inputs=(str(root),), out=str(tmp_path / "o")))
    keys = pq.read_table(tmp_path / "o").column("key").to_pylist()
    assert len(keys) == 1000 and len(set(keys)) == 1000
    assert keys[0] == row_key(path_key("", "2B-en/part-00000.parquet"), 0) == "2B-en__part-00000-0"
    assert keys[500] == "2B-multi__part-00000-0"


def test_key_root_pins_keys_and_is_checked(tmp_path):
    root = two_laion_parts(tmp_path, rows=2)
    only_en = str(root / "2B-en")
    run_match(MatchConfig(inputs=(only_en,), out=str(tmp_path / "a")))  # root: 2B-en itself
    assert pq.read_table(tmp_path / "a").column("key").to_pylist() == ["part-00000-0", "part-00000-1"]
    run_match(MatchConfig(inputs=(only_en,), out=str(tmp_path / "b"), key_root=str(root)))
    assert pq.read_table(tmp_path / "b").column("key").to_pylist()[0] == "2B-en__part-00000-0"
    with pytest.raises(ConfigError, match=r"--key-root .*2B-multi: input .*2B-en.* is not below it"):
        run_match(MatchConfig(inputs=(only_en,), out=str(tmp_path / "c"), key_root=str(root / "2B-multi")))


def test_key_col_takes_the_rows_own_id(tmp_path):
    data = write(tmp_path / "x.parquet", TEXT=["a goose", "a lion"], SAMPLE_ID=pa.array([17, 42], pa.int64()))
    run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), key_col="SAMPLE_ID"))
    assert pq.read_table(tmp_path / "o").column("key").to_pylist() == ["17", "42"]
    bad = write(tmp_path / "y.parquet", TEXT=["a", "b"], id=["ok", "has space"])
    with pytest.raises(InputError, match=r"y.parquet: row 1: --key-col 'id' value 'has space' is not a usable key"):
        run_match(MatchConfig(inputs=(str(bad),), out=str(tmp_path / "o2"), key_col="id"))
    with pytest.raises(SchemaError, match="--key-col 'nope' not found"):
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o3"), key_col="nope"))


# --- markers, resume -----------------------------------------------------------------------
def test_markers_under_stats_and_a_changed_input_is_redone(tmp_path):
    data = write(tmp_path / "in" / "a.parquet", TEXT=["a goose"])
    write(tmp_path / "in" / "b.parquet", TEXT=["a lion"])
    config = MatchConfig(inputs=(str(tmp_path / "in"),), out=str(tmp_path / "o"), pack_rows=0)
    run_match(config)
    out = tmp_path / "o"
    assert sorted(p.name for p in (out / "_stats").iterdir()) == ["00000.json", "00001.json"]
    marker = json.loads((out / "_stats" / "00000.json").read_text())
    assert marker["input_fingerprint"]["path"] == str(data.resolve()) and marker["rows"] == 1
    untouched = (out / "00001.parquet").stat().st_mtime_ns
    time.sleep(0.01)
    write(data, TEXT=["a koala", "a goose"])  # same path, new content
    stats = run_match(config)
    assert stats["rows"] == 3
    assert pq.read_table(out / "00000.parquet").column("label").to_pylist() == [105, 99]
    assert (out / "00001.parquet").stat().st_mtime_ns == untouched


# --- write errors are not input errors (issue 12) ------------------------------------------
def test_full_disk_is_an_output_error_not_a_bad_input(tmp_path, monkeypatch):
    for i in range(4):
        write(tmp_path / "in" / f"p{i}.parquet", TEXT=["a goose", "a lion"])
    import pyarrow.parquet as pq_module

    real = pq_module.ParquetWriter.write_batch
    calls = {"n": 0}

    def full_disk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq_module.ParquetWriter, "write_batch", full_disk)
    config = MatchConfig(inputs=(str(tmp_path / "in"),), out=str(tmp_path / "o"), skip_bad_inputs=True, pack_rows=0)
    with pytest.raises(OSError, match=r"No space left on device") as caught:
        run_match(config)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith("00001.parquet")
    manifest = json.loads((tmp_path / "o" / "_manifest.json").read_text())
    assert manifest["completed"] is False and not (tmp_path / "o" / "_stats.json").exists()
    assert sorted(p.name for p in (tmp_path / "o" / "_stats").iterdir()) == ["00000.json"]
    monkeypatch.setattr(pq_module.ParquetWriter, "write_batch", real)
    stats = run_match(config)  # space again: the run resumes and nothing was "skipped"
    assert stats["rows"] == 8 and stats["skipped_inputs"] == []


def test_cli_prints_a_write_error_as_one_line(tmp_path):
    data = write(tmp_path / "a.parquet", TEXT=["a goose"])
    script = (
        "import errno, sys, pyarrow.parquet as pq\n"
        "def full(self, *a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "pq.ParquetWriter.write_batch = full\n"
        "from janus_build.cli import main\n"
        f"sys.argv = ['janus', 'match', {str(data)!r}, '--out', {str(tmp_path / 'o')!r}, '--skip-bad-inputs']\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "400"}  # line wrapping is the CLI layer's business, not tested here
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "00000.parquet: disk full (No space left on device)" in errors[0]


# --- processes -----------------------------------------------------------------------------
def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(entry.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_leaves_no_worker_running(tmp_path):
    texts = [f"a goose and a lion number {i} " * 20 for i in range(40_000)]
    for i in range(4):
        write(tmp_path / "in" / f"p{i}.parquet", TEXT=texts)
    cmd = [sys.executable, "-m", "janus_build", "match", str(tmp_path / "in"), "--out", str(tmp_path / "o")]
    proc = subprocess.Popen([*cmd, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    workers: set[int] = set()
    while time.time() < deadline and len(workers) < 2:
        workers = _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "the run started no worker processes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.05)
    alive = [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text()]
    assert alive == []
    done = subprocess.run(cmd, capture_output=True, text=True)  # and the directory resumes
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "o" / "_stats.json").read_text())["rows"] == 160_000


# --- the output directory opens as-is ------------------------------------------------------
@pytest.fixture
def matched_dir(tmp_path) -> Path:
    root = two_laion_parts(tmp_path, rows=3)
    run_match(MatchConfig(inputs=(str(root),), out=str(tmp_path / "o"), truth_col=None))
    return tmp_path / "o"


def test_output_opens_in_pyarrow_dataset_and_pandas(matched_dir):
    import pandas as pd
    import pyarrow.dataset as ds

    assert ds.dataset(matched_dir, format="parquet").to_table().num_rows == 6
    assert len(pd.read_parquet(matched_dir)) == 6


def test_output_opens_in_duckdb(matched_dir):
    duckdb = pytest.importorskip("duckdb")
    # DuckDB reads a directory through a glob of its files; the janus files must not be among them
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{matched_dir}/**/*.parquet')").fetchall()[0][0]
    assert count == 6
    assert not [p for p in matched_dir.iterdir() if p.suffix == ".parquet" and p.name.startswith("_")]


@pytest.mark.spark
def test_output_opens_in_spark(matched_dir, monkeypatch):
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        assert spark.read.parquet(str(matched_dir)).count() == 6
    finally:
        spark.stop()  # later tests start their own session


def test_file_uris_for_inputs_and_out(tmp_path):
    root = two_laion_parts(tmp_path, rows=2)
    stats = run_match(MatchConfig(inputs=(f"file://{root}",), out=f"file://{tmp_path / 'o'}", pack_rows=0))
    assert stats["rows"] == 4 and (tmp_path / "o" / "_stats" / "00001.json").is_file()
    assert pq.read_table(tmp_path / "o").column("key").to_pylist()[0] == "2B-en__part-00000-0"


def test_unusable_filesystem_is_one_line(tmp_path):
    with pytest.raises((ConfigError, InputError), match=r"hdfs://127\.0\.0\.1:1"):
        run_match(MatchConfig(inputs=("hdfs://127.0.0.1:1/data/",), out=str(tmp_path / "o")))


def test_a_run_does_not_import_pandas(tmp_path):
    """pandas costs ~0.4 s of CPU start-up; pyarrow imports it for Python literals and to_numpy."""
    data = write(tmp_path / "a.parquet", TEXT=["a goose", None, "Ünïcode <b>lion</b>"], truth=pa.array([99, 1, 291]))
    script = (
        "import sys\n"
        "from janus_build.match import MatchConfig, run_match\n"
        f"run_match(MatchConfig(inputs=({str(data)!r},), out={str(tmp_path / 'o')!r}, truth_col='truth', "
        "strategy='mc', plot=False))\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
