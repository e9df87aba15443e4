"""The stage-directory writer: atomic writes, done-markers, manifest, resume and refusal rules."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.core.fsio import atomic_path, atomic_write_json
from janus_build.core.stage import StageDir
from janus_build.errors import OutputError


@dataclass(frozen=True)
class Cfg:
    strategy: str = "sc"
    workers: int = 1


def test_new_stage_writes_manifest(tmp_path):
    stage = StageDir(tmp_path / "out", "match", Cfg(), inputs=[{"path": "a"}])
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["stage"] == "match"
    assert manifest["config"] == {"strategy": "sc", "workers": 1}
    assert manifest["completed"] is False
    stage.finish({"rows": 3})
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["completed"] is True and manifest["summary"] == {"rows": 3}


def test_shard_done_only_after_stats(tmp_path):
    stage = StageDir(tmp_path, "match", Cfg())
    stage.write_table("00000", pa.table({"x": [1, 2]}))
    assert not stage.is_done("00000")
    stage.mark_done("00000", {"rows": 2})
    assert stage.is_done("00000") and stage.done_shards() == ["00000"]
    assert pq.read_table(tmp_path / "00000.parquet").column("x").to_pylist() == [1, 2]


def test_resume_keeps_done_shards_and_ignores_volatile_keys(tmp_path):
    first = StageDir(tmp_path, "match", Cfg(workers=1))
    first.mark_done("00000", {"rows": 1})
    again = StageDir(tmp_path, "match", Cfg(workers=4))
    assert again.resumed and again.done_shards() == ["00000"]


def test_resume_with_other_options_is_refused(tmp_path):
    first = StageDir(tmp_path, "match", Cfg(strategy="sc"))
    first.mark_done("00000", {"rows": 1})
    (tmp_path / "00000.parquet").write_bytes(b"shard")
    first.close()
    with pytest.raises(OutputError, match="strategy: was 'sc', now 'mc'"):
        StageDir(tmp_path, "match", Cfg(strategy="mc"))


def test_a_run_that_finished_nothing_takes_new_options(tmp_path):
    StageDir(tmp_path, "match", Cfg(strategy="sc"))  # e.g. failed on a mistyped option right after starting
    (tmp_path / ".00000.parquet.abc.tmp").write_text("a killed write")
    again = StageDir(tmp_path, "match", Cfg(strategy="mc"))
    assert again.config["strategy"] == "mc"
    assert json.loads((tmp_path / "_manifest.json").read_text())["config"]["strategy"] == "mc"


def test_foreign_directory_refused_even_with_overwrite(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    for overwrite in (False, True):  # --overwrite replaces a janus output, never someone's files
        with pytest.raises(OutputError, match="not empty"):
            StageDir(tmp_path, "match", Cfg(), overwrite=overwrite)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_other_stage_refused(tmp_path):
    StageDir(tmp_path, "fetch", Cfg())
    with pytest.raises(OutputError, match="janus fetch"):
        StageDir(tmp_path, "match", Cfg())


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "file.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


@dataclass(frozen=True)
class PathCfg:
    out: str = ""
    api_url: str = "http://u:secret@127.0.0.1:9/rest"
    queries: object = None


def test_moved_or_differently_spelled_out_resumes(tmp_path, monkeypatch):
    first = StageDir(tmp_path / "a" / "run", "fetch", PathCfg(out=str(tmp_path / "a" / "run")))
    first.mark_done("00000", {"rows": 1})
    (tmp_path / "a" / "run" / "00000.parquet").write_bytes(b"x")
    first.finish()
    (tmp_path / "a").rename(tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b")
    again = StageDir("run", "fetch", PathCfg(out="run"))
    assert again.resumed and again.done_shards() == ["00000"]


def test_credentials_in_urls_never_reach_the_manifest(tmp_path):
    StageDir(tmp_path, "fetch", PathCfg(), inputs=[{"url": "s3://KEY:SECRET@bucket/x"}]).finish()
    text = (tmp_path / "_manifest.json").read_text()
    assert "secret" not in text and "SECRET" not in text and "http://***@127.0.0.1:9/rest" in text


def test_paths_in_config_are_resolved(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    stage = StageDir("o", "fetch", PathCfg(queries=Path("q.toml")))
    assert stage.config["queries"] == str(tmp_path / "q.toml")


def test_a_changed_input_makes_its_shard_not_done(tmp_path):
    from janus_build.core.stage import fingerprint_file

    source = tmp_path / "in.parquet"
    source.write_bytes(b"one")
    stage = StageDir(tmp_path / "o", "match", Cfg())
    stage.mark_done("00000", {"rows": 1}, input_fingerprint=fingerprint_file(source))
    assert stage.is_done("00000", fingerprint_file(source))
    source.write_bytes(b"two!")  # rewritten at the same path
    assert not stage.is_done("00000", fingerprint_file(source))


def test_a_shard_directory_opens_as_is_in_pyarrow_pandas_and_duckdb(tmp_path):
    import pandas as pd
    import pyarrow.dataset as ds

    stage = StageDir(tmp_path, "match", Cfg())
    for i in range(2):
        stage.write_table(f"0000{i}", pa.table({"x": [i, i]}))
        stage.mark_done(f"0000{i}", {"rows": 2})
    stage.finish({"rows": 4})
    (tmp_path / "_stats.json").write_text("{}")
    assert ds.dataset(tmp_path, format="parquet").to_table().num_rows == 4
    assert len(pd.read_parquet(tmp_path)) == 4
    duckdb = pytest.importorskip("duckdb")
    assert duckdb.sql(f"select count(*) from read_parquet('{tmp_path}')").fetchall()[0][0] == 4


def test_prune_removes_shards_outside_the_plan_and_nothing_else(tmp_path):
    stage = StageDir(tmp_path / "o", "match", Cfg())
    for i in range(3):
        stage.write_table(f"{i:05d}", pa.table({"x": [i]}))
        stage.mark_done(f"{i:05d}", {"rows": 1})
    (tmp_path / "o" / "00002.tar").write_bytes(b"")  # every file of a stale shard goes
    (tmp_path / "o" / "00003.parquet").write_bytes(b"")  # a shard file without its marker too
    (tmp_path / "o" / "notes.parquet").write_bytes(b"")  # not a shard name: kept
    assert stage.prune(["00000", "00001"]) == ["00002", "00003"]
    assert stage.done_shards() == ["00000", "00001"]
    left = sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith("_"))
    assert left == ["00000.parquet", "00001.parquet", "notes.parquet"]
    assert stage.prune(["00000", "00001"]) == []
