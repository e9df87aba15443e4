"""janus import yfcc: YFCC100M metadata in its three published layouts -> decoded metadata shards."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from published import (
    write_yfcc,
    write_yfcc_parquet,
    write_yfcc_subset,
    yfcc_line,
    yfcc_photo,
    yfcc_quirky_photos,
)

from janus_build.core.stage import ShardDir
from janus_build.errors import InputError, OutputError
from janus_build.importers import YfccConfig
from janus_build.importers.yfcc import decode_text, import_yfcc, parse_date


def _rows(out) -> dict[str, dict]:
    shards = ShardDir(out)
    rows = [r for n in shards.done_shards() for r in pq.read_table(shards.shard_path(n)).to_pylist()]
    return {r["source_id"]: r for r in rows}


def test_decoding_rules():
    assert decode_text("Shark+week%0Asecond+line+%26amp%3B+more") == "Shark week\nsecond line & more"
    assert decode_text("%C3%A9l%C3%A9phant") == "éléphant"
    assert decode_text("%3Cb%3Ebold%3C%2Fb%3E+text", strip_html=True) == "bold  text"
    assert parse_date("2010-06-11 21:52:26.0") == "2010-06-11 21:52:26"
    assert parse_date("null") is None and parse_date("4501-01-01 00:00:00.0") is None and parse_date("") is None


@pytest.mark.parametrize(("name", "layout"), [("yfcc100m_dataset-0.bz2", "webscope"), ("yfcc100m_dataset.gz", "mmc")])
def test_text_layouts_decode_drop_videos_and_map_licences(tmp_path, name, layout):
    photos = yfcc_quirky_photos()
    source = write_yfcc(tmp_path / name, photos, layout)
    summary = import_yfcc(YfccConfig(inputs=(source,), out=tmp_path / "out", shard_size=5))
    rows = _rows(tmp_path / "out")
    assert "105" not in rows and summary["videos_dropped"] == 1  # the video
    assert len(rows) == 11 and summary["rows"] == 11 and summary["shards"] == 3
    lion = rows["100"]
    assert lion["key"] == "yfcc-100" and lion["source"] == "yfcc" and lion["title"] == "A lion at the zoo"
    assert lion["description"] == "Shark week\nsecond line & more" and lion["tags"] == "big cat, lion"
    assert lion["license"] == "CC BY 2.0" and lion["license_name"] == "Attribution License"
    assert lion["url"].endswith("/100_0123456789.jpg") and lion["owner"] == "3@N02"
    assert lion["date_taken"] == "2010-06-11 21:52:26" and lion["date_uploaded"] == 1276302746
    assert rows["101"]["title"] == "éléphant d'Afrique"
    assert rows["101"]["description"] == 'my  "flamingo" pics'  # HTML tags removed, entities resolved
    assert rows["102"]["title"] == "" and rows["102"]["description"] == "" and rows["102"]["tags"] == ""
    assert rows["103"]["date_taken"] is None and rows["104"]["date_taken"] is None
    assert summary["dates_taken_unusable"] == 2
    assert rows["106"]["title"] == "Teapot 100%" and rows["106"]["tags"] == "tea pot, 100%"
    assert rows["106"]["license"] == "CC BY-NC-SA 2.0"
    assert rows["107"]["license"] == "All Rights Reserved"
    assert rows["109"]["owner_name"] == "Zoë" and rows["110"]["title"] == "banana+split"
    if layout == "mmc":
        assert lion["line_number"] == 0 and len(lion["photo_hash"]) == 32
    else:
        assert lion["line_number"] is None and lion["photo_hash"] is None


def test_subset_list_and_parquet_rerelease(tmp_path):
    photos = yfcc_quirky_photos()
    full = write_yfcc(tmp_path / "yfcc100m_dataset-0", photos)
    subset = write_yfcc_subset(tmp_path / "yfcc100m_subset_data.tsv.bz2", [photos[0], photos[6], photos[5]])
    summary = import_yfcc(YfccConfig(inputs=(full,), out=tmp_path / "sub", subset=subset))
    assert set(_rows(tmp_path / "sub")) == {"100", "106"}  # the listed video is still dropped
    assert summary["not_in_subset"] == 9 and summary["videos_dropped"] == 1

    rerelease = write_yfcc_parquet(tmp_path / "yfcc15m-00000.parquet", photos)
    import_yfcc(YfccConfig(inputs=(rerelease,), out=tmp_path / "pq"))
    rows = _rows(tmp_path / "pq")
    assert rows["100"]["description"] == "Shark week\nsecond line & more"
    assert rows["100"]["title_clean"] == "a lion at the zoo" and rows["106"]["license"] == "CC BY-NC-SA 2.0"
    text = write_yfcc(tmp_path / "same.bz2", photos)
    import_yfcc(YfccConfig(inputs=(text,), out=tmp_path / "txt"))
    drop = ("title_clean", "description_clean")
    assert [{k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / "pq").values()] == [
        {k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / "txt").values()
    ]


def test_malformed_lines_resume_and_changed_input(tmp_path):
    photos = [yfcc_photo(i, f"photo {i}") for i in range(1, 8)]
    path = write_yfcc(tmp_path / "part", photos)
    with open(path, "a") as handle:
        handle.write("not\ta\tyfcc\tline\n")
    config = YfccConfig(inputs=(path,), out=tmp_path / "out", shard_size=3)
    summary = import_yfcc(config)
    assert summary["malformed_lines"] == 1 and summary["malformed_examples"] == ["part:8 (4 fields)"]
    shards = ShardDir(tmp_path / "out")
    assert shards.done_shards() == ["00000", "00001", "00002"]
    shards.unmark("00001")
    before = shards.shard_path("00000").stat().st_mtime_ns
    again = import_yfcc(config)
    assert again["shards_written"] == 1 and shards.shard_path("00000").stat().st_mtime_ns == before
    write_yfcc(path, photos[:4])  # a changed input: every shard redone, the stale third removed
    changed = import_yfcc(config)
    assert changed["shards_written"] == 2 and shards.done_shards() == ["00000", "00001"]
    assert not shards.shard_path("00002").exists() and len(_rows(tmp_path / "out")) == 4
    with pytest.raises(OutputError, match="key_prefix"):
        import_yfcc(YfccConfig(inputs=(path,), out=tmp_path / "out", shard_size=3, key_prefix="y"))
    with pytest.raises(InputError, match="no such file"):
        import_yfcc(YfccConfig(inputs=(tmp_path / "missing.bz2",), out=tmp_path / "o2"))


def test_raw_newlines_rejoin_and_a_bad_line_spares_its_neighbour(tmp_path):
    photos = [yfcc_photo(i, f"photo {i}", f"text {i}") for i in range(1, 5)]
    lines = [yfcc_line(p) for p in photos]
    broken = lines[1].replace("text+2", "first+line\nsecond+line\r\nthird")  # raw newlines inside
    path = tmp_path / "yfcc100m_dataset-0"
    path.write_text(lines[0] + broken + "short\tline\n" + lines[2] + lines[3], encoding="utf-8")
    summary = import_yfcc(YfccConfig(inputs=(path,), out=tmp_path / "out"))
    rows = _rows(tmp_path / "out")
    assert sorted(rows) == ["1", "2", "3", "4"] and rows["2"]["description"] == "first line\nsecond line\nthird"
    assert summary["malformed_lines"] == 1 and summary["records_over_several_lines"] == 1
    assert summary["malformed_examples"] == ["yfcc100m_dataset-0:5 (2 fields)"]
