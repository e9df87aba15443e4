"""janus match packs runs of small input files into one shard (--pack-rows): same rows, fewer shards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.errors import InputError
from janus_build.match import MatchConfig, run_match
from janus_build.match.engine import InputInfo, plan_tasks
from janus_build.match.shard import ShardInput

TEXT = pa.schema([("TEXT", pa.string())])
TEXT_URL = pa.schema([("TEXT", pa.string()), ("URL", pa.string())])


def plan(sizes: list[tuple[int, pa.Schema | None]], pack_rows: int = 100, nbytes: int = 10) -> list[list[str]]:
    members = [ShardInput(f"/d/{i}.parquet", f"{i}", {}) for i in range(len(sizes))]
    infos = {m.location: InputInfo(rows, nbytes * rows, schema) for m, (rows, schema) in zip(members, sizes)}
    config = MatchConfig(inputs=("x",), out="o", pack_rows=pack_rows)
    return [[m.file_key for m in pack] for pack in plan_tasks(members, infos, config)]


def test_plan_packs_consecutive_small_files_up_to_the_limit():
    assert plan([(40, TEXT)] * 5) == [["0", "1"], ["2", "3"], ["4"]]
    # a large file is never packed and ends the pack before it; the plan keeps input order
    assert plan([(30, TEXT), (30, TEXT), (500, TEXT), (30, TEXT)]) == [["0", "1"], ["2"], ["3"]]
    # other columns start a new pack; an unreadable file (no schema) is a shard of its own
    assert plan([(10, TEXT), (10, TEXT_URL), (10, TEXT_URL), (10, None), (10, TEXT)]) == [
        ["0"],
        ["1", "2"],
        ["3"],
        ["4"],
    ]
    assert plan([(10, TEXT)] * 3, pack_rows=0) == [["0"], ["1"], ["2"]]
    # bytes bound a pack too (PACK_BYTES = 16 MiB of decoded data)
    assert plan([(10, TEXT)] * 3, nbytes=600_000) == [["0", "1"], ["2"]]


def split(laion_sample: Path, root: Path, parts: int) -> Path:
    table = pq.read_table(laion_sample)
    per = -(-table.num_rows // parts)
    root.mkdir(parents=True)
    for i in range(parts):
        pq.write_table(table.slice(i * per, per), root / f"part-{i:05d}.parquet")
    return root


def test_packed_shards_hold_exactly_the_unpacked_rows(tmp_path, laion_sample):
    root = split(laion_sample, tmp_path / "in", 10)
    packed = run_match(MatchConfig(inputs=(str(root),), out=str(tmp_path / "p"), labels="in1k", pack_rows=300))
    single = run_match(MatchConfig(inputs=(str(root),), out=str(tmp_path / "s"), labels="in1k", pack_rows=0))
    assert packed["shards"] == 4 and single["shards"] == 10 and packed["inputs"] == single["inputs"] == 10
    assert {k: v for k, v in packed.items() if k != "shards"} == {k: v for k, v in single.items() if k != "shards"}
    assert pq.read_table(tmp_path / "p").equals(pq.read_table(tmp_path / "s"))  # same keys, labels, order
    marker = json.loads((tmp_path / "p" / "_stats" / "00001.json").read_text())
    assert [Path(p).name for p in marker["inputs"]] == [
        "part-00003.parquet",
        "part-00004.parquet",
        "part-00005.parquet",
    ]
    assert [f["path"] for f in marker["input_fingerprint"]["inputs"]] == marker["inputs"]
    assert marker["rows"] == 300 and pq.read_table(tmp_path / "p" / "00001.parquet").column("key")[0].as_py() == (
        "part-00003-0"
    )


def test_a_changed_member_redoes_its_pack_only(tmp_path, laion_sample):
    root = split(laion_sample, tmp_path / "in", 10)
    config = MatchConfig(inputs=(str(root),), out=str(tmp_path / "o"), labels="in1k", pack_rows=300)
    run_match(config)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("0*.parquet")}
    time.sleep(0.01)
    member = pq.read_table(root / "part-00004.parquet")
    geese = member.set_column(member.schema.get_field_index("TEXT"), "TEXT", pa.array(["a goose"] * 100))
    pq.write_table(geese, root / "part-00004.parquet")  # same columns and rows: the plan stands
    stats = run_match(config)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("0*.parquet")}
    assert [name for name in sorted(after) if after[name] != before[name]] == ["00001.parquet"]
    assert stats["per_class"]["99"] >= 100 and stats["rows"] == 1000


def test_a_change_that_moves_pack_boundaries_leaves_no_stale_shard(tmp_path):
    for i in range(4):
        pq.write_table(pa.table({"TEXT": [f"a goose {i}"] * 50}), tmp_path / f"p{i}.parquet")
    config = MatchConfig(inputs=(str(tmp_path / "p*.parquet"),), out=str(tmp_path / "o"), pack_rows=100)
    assert run_match(config)["shards"] == 2  # [p0 p1] [p2 p3]
    pq.write_table(pa.table({"TEXT": ["a lion"] * 200}), tmp_path / "p0.parquet")  # now large: 3 shards
    assert run_match(config)["shards"] == 3
    pq.write_table(pa.table({"TEXT": ["a lion"] * 10}), tmp_path / "p0.parquet")  # small again: 2 shards
    stats = run_match(config)
    assert stats["shards"] == 2 and sorted(p.name for p in (tmp_path / "o").glob("0*.parquet")) == [
        "00000.parquet",
        "00001.parquet",
    ]
    assert sorted(p.name for p in (tmp_path / "o" / "_stats").iterdir()) == ["00000.json", "00001.json"]
    assert pq.read_table(tmp_path / "o").num_rows == stats["rows"] == 160  # no row twice


def corrupt_pages(path: Path) -> None:
    """Garble a parquet file's data pages, leaving its footer readable (it passes the first look)."""
    data = bytearray(path.read_bytes())
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start = column.data_page_offset + 40
    data[start : start + 60] = b"\xff" * 60
    path.write_bytes(bytes(data))


def test_a_bad_member_stops_the_run_or_is_skipped_and_listed(tmp_path):
    for i in range(3):
        pq.write_table(pa.table({"TEXT": [f"a goose number {n}" for n in range(200)]}), tmp_path / f"p{i}.parquet")
    corrupt_pages(tmp_path / "p1.parquet")
    inputs = (str(tmp_path / "p*.parquet"),)
    with pytest.raises(InputError, match=r"p1\.parquet: corrupt or unreadable parquet at row 0"):
        run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "o")))
    assert not (tmp_path / "o" / "00000.parquet").exists()  # nothing of the pack was written
    config = MatchConfig(inputs=inputs, out=str(tmp_path / "o2"), skip_bad_inputs=True)
    for _ in range(2):  # the second run redoes nothing and still reports the skipped member
        stats = run_match(config)
        assert stats["rows"] == 400 and stats["shards"] == 1
        assert [Path(b["path"]).name for b in stats["skipped_inputs"]] == ["p1.parquet"]
    assert pq.read_table(tmp_path / "o2").column("key").to_pylist()[199:201] == ["p0-199", "p2-0"]


def test_key_col_values_are_checked_per_member(tmp_path):
    pq.write_table(pa.table({"TEXT": ["a goose", "a lion"], "id": ["a1", "a2"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"TEXT": ["a koala", "x"], "id": ["b1", "b 2"]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: row 1: --key-col 'id' value 'b 2'"):
        run_match(MatchConfig(inputs=(str(tmp_path),), out=str(tmp_path / "o"), key_col="id"))
    pq.write_table(pa.table({"TEXT": ["a koala", "x"], "id": ["b1", "b2"]}), tmp_path / "b.parquet")
    run_match(MatchConfig(inputs=(str(tmp_path / "*.parquet"),), out=str(tmp_path / "o2"), key_col="id"))
    assert pq.read_table(tmp_path / "o2" / "00000.parquet").column("key").to_pylist() == ["a1", "a2", "b1", "b2"]


def test_pack_rows_is_a_result_changing_option(tmp_path):
    for i in range(2):
        pq.write_table(pa.table({"TEXT": ["a goose"]}), tmp_path / f"p{i}.parquet")
    run_match(MatchConfig(inputs=(str(tmp_path / "p*"),), out=str(tmp_path / "o")))
    from janus_build.errors import OutputError

    with pytest.raises(OutputError, match="pack_rows: was 65536, now 0"):  # else shards would hold rows twice
        run_match(MatchConfig(inputs=(str(tmp_path / "p*"),), out=str(tmp_path / "o"), pack_rows=0))


def test_a_pack_of_long_captions_is_labelled_in_byte_bounded_batches(tmp_path):
    for i in range(3):
        texts = [f"a goose {n} " + "x" * 2_000 if n % 2 else f"a lion {n} " + "y" * 2_000 for n in range(100)]
        pq.write_table(pa.table({"TEXT": texts}), tmp_path / f"p{i}.parquet")
    inputs = (str(tmp_path / "p*.parquet"),)
    small = dict(batch_bytes=1 << 16, batch_size=65_536)  # ~30 rows of 2 kB per batch
    packed = run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "a"), **small))
    single = run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "b"), pack_rows=0))
    assert packed["shards"] == 1 and packed["per_class"] == single["per_class"] == {"99": 150, "291": 150}
    assert pq.read_table(tmp_path / "a").equals(pq.read_table(tmp_path / "b"))


def test_a_bad_member_of_a_pack_read_ahead_is_reported_as_any_other(tmp_path):
    for i in range(4):  # two packs of two; the second is read while the first is matched
        pq.write_table(pa.table({"TEXT": [f"a goose number {n}" for n in range(200)]}), tmp_path / f"p{i}.parquet")
    corrupt_pages(tmp_path / "p3.parquet")
    inputs = (str(tmp_path / "p*.parquet"),)
    with pytest.raises(InputError, match=r"p3\.parquet: corrupt or unreadable parquet at row 0"):
        run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "o"), pack_rows=400))
    assert sorted(p.name for p in (tmp_path / "o" / "_stats").iterdir()) == ["00000.json"]  # the first pack stands
    stats = run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "o"), pack_rows=400, skip_bad_inputs=True))
    assert stats["rows"] == 600 and [Path(b["path"]).name for b in stats["skipped_inputs"]] == ["p3.parquet"]
