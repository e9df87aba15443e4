"""The stage-directory writer: atomic writes, done-markers, manifest, resume and refusal rules."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.errors import OutputError
from janus_build.stage import StageDir, atomic_path, atomic_write_json


@dataclass(frozen=True)
class Cfg:
    strategy: str = "sc"
    workers: int = 1


def test_new_stage_writes_manifest(tmp_path):
    stage = StageDir(tmp_path / "out", "match", Cfg(), inputs=[{"path": "a"}])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stage"] == "match"
    assert manifest["config"] == {"strategy": "sc", "workers": 1}
    assert manifest["completed"] is False
    stage.finish({"rows": 3})
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
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
    with pytest.raises(OutputError, match="strategy: was 'sc', now 'mc'"):
        StageDir(tmp_path, "match", Cfg(strategy="mc"))


def test_a_run_that_finished_nothing_takes_new_options(tmp_path):
    StageDir(tmp_path, "match", Cfg(strategy="sc"))  # e.g. failed on a mistyped option right after starting
    (tmp_path / ".00000.parquet.abc.tmp").write_text("a killed write")
    again = StageDir(tmp_path, "match", Cfg(strategy="mc"))
    assert again.config["strategy"] == "mc"
    assert json.loads((tmp_path / "manifest.json").read_text())["config"]["strategy"] == "mc"


def test_foreign_directory_refused_unless_overwrite(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"):
        StageDir(tmp_path, "match", Cfg())
    assert (tmp_path / "precious.txt").exists()
    StageDir(tmp_path, "match", Cfg(), overwrite=True)
    assert not (tmp_path / "precious.txt").exists()


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
