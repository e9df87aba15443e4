"""janus import url-list: a match output or metadata import -> img2dataset's input list."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.core.stage import StageDir
from janus_build.errors import InputError
from janus_build.importers import UrlListConfig
from janus_build.importers.urllist import write_url_list


def test_url_list_from_match_output(tmp_path):
    match = tmp_path / "match"
    stage = StageDir(match, "match", {"strategy": "sc"})
    pq.write_table(
        pa.table(
            {
                "URL": ["http://a", "http://b", None],
                "TEXT": ["a lion", "nothing", "a tench"],
                "key": ["s-0", "s-1", "s-2"],
                "label": pa.array([291, -1, 0], pa.int32()),
            }
        ),
        match / "00000.parquet",
    )
    stage.mark_done("00000", {})
    stage.finish()
    result = write_url_list(UrlListConfig(stage_dir=match, out=tmp_path / "urls.parquet"))
    table = pq.read_table(tmp_path / "urls.parquet")
    assert table.column_names == ["janus_key", "URL", "TEXT", "label"] and table.to_pylist() == [
        {"janus_key": "s-0", "URL": "http://a", "TEXT": "a lion", "label": 291}
    ]
    assert result["rows"] == 3 and result["written"] == 1
    with pytest.raises(InputError, match="not a janus match output"):
        write_url_list(UrlListConfig(stage_dir=tmp_path, out=tmp_path / "u.parquet"))
    everything = write_url_list(UrlListConfig(stage_dir=match, out=tmp_path / "all.parquet", all_rows=True))
    assert everything["written"] == 2  # the row without a URL is left out


def test_run_dispatches_on_the_config(tmp_path):
    from janus_build.importers import YfccConfig, run

    source = tmp_path / "yfcc100m_dataset-0"
    source.write_text("\t".join(["7", *[""] * 21, "0"]) + "\n")
    assert run(YfccConfig(inputs=(source,), out=tmp_path / "y"))["rows"] == 1
    with pytest.raises(TypeError, match="not an import config"):
        run(object())
