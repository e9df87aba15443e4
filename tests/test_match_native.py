"""The compiled tokeniser (match/_tokens.c) gives exactly the ids of the numpy + Arrow path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.labels import load_label_set, load_term_set, terms_for
from janus_build.match import MatchConfig, native, run_match
from janus_build.match.matcher import Matcher, TermTable

ODD = [
    "A GOLDEN Retriever's ball",  # upper case and an apostrophe inside a word
    "dog`s `quoted' lion's",  # backtick apostrophes
    "tiger-shark,great white shark;killer whale",  # separators between terms
    None,
    "",
    "   ",
    "x" * 300 + " goose " + "lion" * 80,  # tokens longer than the C buffer
    "goose<b>lion</b> & koala",  # markup: the general path
    "see https://x.com/a,lion or www.goose.org",  # URLs: the general path
    "Ein Löwe im Zoo, ein Koala",  # non-ASCII: the general path
    "<i>a goose</i> on the Löwenbräu terrace",  # markup first, non-ASCII later: the general path
    "12 geese 3 lions 4x4",
    "lion's'",
    "'",
]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(TermTable(terms_for(load_label_set("in1k"), load_term_set("openai"))))


def by_row(ids: np.ndarray, rows: np.ndarray) -> tuple[list[int], list[int]]:
    order = np.argsort(rows, kind="stable")  # each row's tokens stay in caption order
    return ids[order].tolist(), rows[order].tolist()


def test_the_library_was_built_and_loads():
    assert native.LIBRARY.is_file(), "pip install -e . should have compiled match/_tokens.c (a C compiler is needed)"
    assert native.load() is not None


def test_same_ids_as_the_general_path(matcher, laion_sample):
    texts = pq.read_table(laion_sample).column("TEXT").combine_chunks()
    texts = pa.concat_arrays([texts, pa.array(ODD, pa.string())])
    for part in (texts, texts.slice(7, 600)):  # a slice starts at a non-zero offset
        fast = by_row(*matcher.token_ids(part))
        general = by_row(*matcher._general_token_ids(part))
        assert fast == general
    assert sum(1 for i in fast[0] if i) > 100  # term words were found, not just separators


def test_flagged_rows_are_exactly_the_non_ascii_and_markup_ones(matcher):
    texts = pa.array(ODD, pa.string())
    _, rows, flags = native.ascii_token_ids(native.load(), texts, matcher.table.native_table)
    assert np.flatnonzero(flags == native.MARKUP).tolist() == [7, 8]
    assert np.flatnonzero(flags == native.NON_ASCII).tolist() == [9, 10]
    assert set(rows.tolist()) == {0, 1, 2, 6, 11, 12}  # rows with tokens; 3-5 and 13 have none


def test_the_stage_writes_the_same_shards_with_and_without_it(tmp_path, laion_sample, monkeypatch):
    source = pq.read_table(laion_sample)
    odd = pa.table({"TEXT": ODD * 10, "URL": ["u"] * len(ODD) * 10})
    pq.write_table(pa.concat_tables([source.select(["TEXT", "URL"]), odd]), tmp_path / "in.parquet")
    config = dict(inputs=(str(tmp_path / "in.parquet"),), labels="in1k", strategy="mc")
    fast = run_match(MatchConfig(out=str(tmp_path / "fast"), **config))
    monkeypatch.setenv("JANUS_NATIVE", "0")
    native.load.cache_clear()
    try:
        assert native.load() is None
        general = run_match(MatchConfig(out=str(tmp_path / "general"), **config))
    finally:
        monkeypatch.delenv("JANUS_NATIVE")
        native.load.cache_clear()
    assert fast == general and fast["labelled"] > 150
    assert pq.read_table(tmp_path / "fast").equals(pq.read_table(tmp_path / "general"))


def test_the_token_table_finds_every_candidate_and_nothing_else():
    table = native.TokenTable.build(["lion", "goose", "geese", "li"], np.array([3, 5, 5, 9]))
    texts = pa.array(["lion geese goose li lio lions l"], pa.string())
    ids, rows, flags = native.ascii_token_ids(native.load(), texts, table)
    assert ids.tolist() == [3, 5, 5, 9, 0, 0, 0] and rows.tolist() == [0] * 7 and not flags.any()
