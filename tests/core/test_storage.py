"""core.storage: locations, filesystems and the object-store stage directory (local-backed here;
tests/test_match_s3.py runs it against a real S3 API)."""

from __future__ import annotations

import json
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.core import storage
from janus_build.core.stage import StageDir, config_differences
from janus_build.errors import ConfigError, OutputError


def test_schemes_and_local_paths(tmp_path):
    assert (
        storage.scheme_of("s3://b/k") == "s3" and storage.scheme_of("/a/b") == "" and storage.scheme_of("C:\\x") == ""
    )
    assert storage.is_remote("gs://b/k") and not storage.is_remote("file:///tmp/x") and not storage.is_remote("x/y")
    assert storage.local_path("file:///tmp/a%20b.parquet") == "/tmp/a b.parquet"
    assert storage.uri_of("hdfs://nn:8020/data", "/data/x.parquet") == "hdfs://nn:8020/data/x.parquet"
    assert storage.uri_of("s3://bucket/data", "bucket/data/x.parquet") == "s3://bucket/data/x.parquet"
    handle, path = storage.filesystem(f"file://{tmp_path}")
    assert path == str(tmp_path) and handle.type_name == "local"


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match=r"nosuchscheme://x: cannot open this filesystem"):
        storage.filesystem("nosuchscheme://x/y")


def test_open_stage_dir_is_local_for_paths_and_file_uris(tmp_path):
    with storage.open_stage_dir(f"file://{tmp_path / 'o'}", "match", {"a": 1}) as stage:
        assert isinstance(stage, StageDir) and stage.path == tmp_path / "o"


def test_store_stage_dir_layout_resume_and_pickle(tmp_path, monkeypatch):
    # a fsspec "memory" store behaves like an object store: no rename, no lock
    uri = "memory://bucket/out"
    stage = storage.StoreStageDir(uri, "match", {"strategy": "sc", "workers": 1}, volatile_keys=("workers",))
    shard = pickle.loads(pickle.dumps(stage))
    assert type(shard) is storage.StoreShardDir and shard.uri == uri
    with shard.parquet_writer("00000", pa.schema([("x", pa.int32())])) as writer:
        writer.write_table(pa.table({"x": pa.array([1, 2], pa.int32())}))
    assert not shard.is_done("00000")
    shard.mark_done("00000", {"rows": 2}, {"path": "in", "size": 1})
    assert shard.is_done("00000", {"path": "in", "size": 1}) and not shard.is_done("00000", {"path": "in", "size": 2})
    assert shard.done_shards() == ["00000"] and shard.read_stats("00000")["rows"] == 2
    handle, root = storage.filesystem(uri)
    with handle.open_input_file(f"{root}/00000.parquet") as source:
        assert pq.read_table(source).column("x").to_pylist() == [1, 2]
    shard.write_bytes("00001.parquet", b"stale")
    shard.mark_done("00001", {"rows": 1})
    assert stage.prune(["00000"]) == ["00001"] and shard.done_shards() == ["00000"]
    assert (
        not handle.get_file_info(f"{root}/00001.parquet").is_file
        and handle.get_file_info(f"{root}/00000.parquet").is_file
    )
    stage.finish({"rows": 2})
    manifest = json.loads(handle.open_input_stream(f"{root}/_manifest.json").read())
    assert manifest["completed"] is True and manifest["stage"] == "match"
    again = storage.StoreStageDir(uri, "match", {"strategy": "sc", "workers": 4}, volatile_keys=("workers",))
    assert again.resumed
    with pytest.raises(OutputError, match="strategy: was 'sc', now 'mc'"):
        storage.StoreStageDir(uri, "match", {"strategy": "mc", "workers": 1}, volatile_keys=("workers",))


def test_config_differences_ignore_volatile_keys():
    assert config_differences({"a": 1, "w": 1}, {"a": 2, "w": 3}, {"w"}) == ["a: was 1, now 2"]
