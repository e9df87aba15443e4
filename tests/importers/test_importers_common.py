"""importers.common: streamed JSON lists, compressed inputs, licence names, resumable row shards."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet
import pytest
from published import write_text

from janus_build.core.stage import StageDir
from janus_build.errors import InputError, SchemaError
from janus_build.importers.common import RowShards, iter_json_list, license_name, open_text


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_json_list_streams_across_chunk_boundaries(chunk):
    records = [{"filename": f"n{i}.JPEG", "title": 'é \u00e9 "q" [x], {y}', "tags": ["a", "b"]} for i in range(5)]
    text = json.dumps(records, indent=4)  # \u escapes, nested lists, brackets inside strings
    assert list(iter_json_list(io.StringIO(text), "x.json", chunk_chars=chunk)) == records
    assert list(iter_json_list(io.StringIO(" [ ] "), "x.json", chunk_chars=chunk)) == []


def test_json_list_errors_name_the_file():
    with pytest.raises(InputError, match="a.json: expected a JSON list"):
        list(iter_json_list(io.StringIO('{"a": 1}'), "a.json"))
    with pytest.raises(InputError, match="b.json: invalid JSON"):
        list(iter_json_list(io.StringIO('[{"a": 1}, {"a": '), "b.json", chunk_chars=4))
    with pytest.raises(InputError, match="c.json: the JSON list ends early"):
        list(iter_json_list(io.StringIO('[{"a": 1}, '), "c.json"))


@pytest.mark.parametrize("name", ["f.txt", "f.txt.gz", "f.txt.bz2"])
def test_compressed_inputs(tmp_path, name):
    write_text(tmp_path / name, ["é\tb\n", "c\n"])
    with open_text(tmp_path / name) as handle:
        assert handle.read() == "é\tb\nc\n"


def test_licence_vocabulary():
    assert license_name("Attribution-NonCommercial-ShareAlike License") == "CC BY-NC-SA 2.0"
    assert license_name("x", "http://creativecommons.org/licenses/by-nc-sa/2.0/") == "CC BY-NC-SA 2.0"
    assert license_name("https://creativecommons.org/licenses/by/2.0/") == "CC BY 2.0"
    assert license_name("https://creativecommons.org/publicdomain/zero/1.0/") == "CC0 1.0 (Public Domain Dedication)"
    assert license_name("CC BY 4.0") == "CC BY 4.0" and license_name("my own terms") == "my own terms"
    assert license_name("") is None and license_name(None) is None


def test_row_shards_resume_and_drop_stale(tmp_path):
    schema = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("n", pa.int64())])
    with StageDir(tmp_path / "s", "import-x", {}) as stage:
        shards = RowShards(stage, schema, 2, {"inputs_sha256": "a"})
        for n in range(5):
            shards.add({"key": f"k{n}", "n": n})
        assert shards.close() == {"rows": 5, "shards": 3, "shards_written": 3}
    with StageDir(tmp_path / "s", "import-x", {}) as stage:  # same input: nothing rewritten
        shards = RowShards(stage, schema, 2, {"inputs_sha256": "a"})
        for n in range(5):
            shards.add({"key": f"k{n}", "n": n})
        assert shards.close() == {"rows": 5, "shards": 3, "shards_written": 0}
    with StageDir(tmp_path / "s", "import-x", {}) as stage:  # a changed, shorter input
        shards = RowShards(stage, schema, 2, {"inputs_sha256": "b"})
        for n in range(3):
            shards.add({"key": f"k{n}", "n": n})
        assert shards.close() == {"rows": 3, "shards": 2, "shards_written": 2}
        assert stage.done_shards() == ["00000", "00001"] and not stage.shard_path("00002").exists()
        assert pa.parquet.read_table(stage.shard_path("00001")).column("n").to_pylist() == [2]


def test_row_shards_write_in_row_groups_and_abort_leaves_nothing(tmp_path):
    schema = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("n", pa.int64())])
    with StageDir(tmp_path / "s", "import-x", {}) as stage:
        with RowShards(stage, schema, 5, {"inputs_sha256": "a"}, batch_rows=2) as shards:
            for n in range(7):
                shards.add({"key": f"k{n}", "n": n})
            shards.close()
        first = pyarrow.parquet.ParquetFile(stage.shard_path("00000"))
        assert first.metadata.num_row_groups == 3 and first.read().column("n").to_pylist() == [0, 1, 2, 3, 4]
        shards = RowShards(stage, schema, 5, {"inputs_sha256": "b"}, batch_rows=2)
        with pytest.raises(SchemaError, match="null"), shards:
            shards.add({"key": "k0", "n": 0})
            shards.add({"key": None, "n": 1})  # a row the schema refuses
        assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".")]  # no temporary left
        assert stage.is_done("00000", {"inputs_sha256": "b"}) is False
