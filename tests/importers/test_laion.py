"""janus import laion: LAION-400M and LAION-2B parquet -> metadata shards with provenance kept."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from published import laion2b_rows, laion400m_rows

from janus_build.core.stage import ShardDir
from janus_build.errors import InputError
from janus_build.importers import LaionConfig
from janus_build.importers.laion import import_laion


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _read(out) -> list[dict]:
    shards = ShardDir(out)
    return [r for n in shards.done_shards() for r in pq.read_table(shards.shard_path(n)).to_pylist()]


def test_laion400m_ids_licence_and_nsfw_kept(tmp_path):
    _write(tmp_path / "laion400m-meta" / "part-00000.parquet", laion400m_rows(10))
    _write(tmp_path / "laion400m-meta" / "part-00001.parquet", laion400m_rows(5, start=10))
    summary = import_laion(LaionConfig(inputs=(str(tmp_path / "laion400m-meta"),), out=tmp_path / "out"))
    rows = _read(tmp_path / "out")
    assert summary["rows"] == 15 and summary["shards"] == 2 and len(rows) == 15
    first = rows[1]
    assert first["key"] == "laion-3000001" and first["source_id"] == "3000001" and first["source"] == "laion"
    assert (
        first["url"] == first["URL"] == "https://example.com/img/1.jpg" and first["TEXT"] == "great white shark photo"
    )
    by_id = {r["SAMPLE_ID"]: r for r in rows}
    assert by_id[3_000_000]["license"] == "unknown" and by_id[3_000_000]["LICENSE"] == "?"
    assert by_id[3_000_001]["license"] == "CC BY 4.0"
    assert by_id[3_000_002]["license"] == "CC BY-NC-SA 4.0" and by_id[3_000_002]["NSFW"] == "NSFW"
    assert by_id[3_000_004]["license"] == "unknown" and by_id[3_000_004]["TEXT"] == "Éclair au café"
    assert pq.read_schema(ShardDir(tmp_path / "out").shard_path("00000")).names[:8] == [
        "key", "source", "source_id", "url", "license", "owner", "title", "label_source"
    ]  # fmt: skip


def test_laion2b_hash_ids_punsafe_and_resume(tmp_path):
    _write(tmp_path / "2B-en" / "part-00000.parquet", laion2b_rows(6))
    config = LaionConfig(inputs=(str(tmp_path / "2B-en" / "*.parquet"),), out=tmp_path / "out", license="see URL")
    import_laion(config)
    rows = _read(tmp_path / "out")
    assert rows[0]["key"] == "laion--5000000000000" and rows[1]["source_id"] == "-4999999999993"
    assert [r["punsafe"] for r in rows][:3] == [0.0, 0.1, 0.2] and {r["license"] for r in rows} == {"see URL"}
    again = import_laion(config)
    assert again["shards_written"] == 0 and again["rows"] == 6


def test_files_without_ids_get_path_keys_unique_across_folders(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "hash"} for r in laion2b_rows(3)]
    _write(tmp_path / "2B-en" / "part-00000.parquet", rows)
    _write(tmp_path / "2B-multi" / "part-00000.parquet", rows)
    inputs = (str(tmp_path / "2B-en"), str(tmp_path / "2B-multi"))
    import_laion(LaionConfig(inputs=inputs, out=tmp_path / "out"))
    keys = [r["key"] for r in _read(tmp_path / "out")]
    assert len(set(keys)) == 6 and keys[0] == "laion-2B-en__part-00000-0"
    with pytest.raises(InputError, match="no such parquet file"):
        import_laion(LaionConfig(inputs=(str(tmp_path / "nothing"),), out=tmp_path / "o2"))


def test_sample_ids_stored_as_doubles(tmp_path):
    rows = laion400m_rows(3)
    for row in rows:
        row["SAMPLE_ID"] = float(row["SAMPLE_ID"])
    _write(tmp_path / "part-00000.parquet", rows)
    import_laion(LaionConfig(inputs=(str(tmp_path / "part-00000.parquet"),), out=tmp_path / "out"))
    assert [r["key"] for r in _read(tmp_path / "out")] == ["laion-3000000", "laion-3000001", "laion-3000002"]
