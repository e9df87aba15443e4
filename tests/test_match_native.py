"""The compiled matcher (match/_tokens.c) gives exactly the ids and hits of the numpy + Arrow path,
and its Unicode table cuts every code point as janus_build.text.normalize does."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.labels import load_label_set, load_term_set, terms_for
from janus_build.match import MatchConfig, native, run_match, unicode_table
from janus_build.match.matcher import Matcher, TermTable, _by_row, tokenize_column
from janus_build.text import APOSTROPHE_PATTERN, normalize

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
    "Ein Löwe im Zoo, ein Koala",  # non-ASCII: through the Unicode table
    "<i>a goose</i> on the Löwenbräu terrace",  # markup first, non-ASCII later: the general path
    "Ｌｉｏｎ ＧＯＯＳＥ’s ｌｉｏｎ’ｓ ﬁsh ①lion",  # full-width, apostrophes, a ligature, a circled digit
    "cafe\u0301 lion",  # a combining accent (NFKC composes it with the 'e'): the general path
    "ΟΔΟΣ lion",  # a capital sigma (its lower case depends on the position): the general path
    "ｗｗｗ．goose.org lion",  # a markup hint only after NFKC: the general path
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


def test_flagged_rows_are_exactly_the_neighbour_dependent_unicode_ones(matcher):
    texts = pa.array(ODD, pa.string())
    _, rows, flags = native.match_rows(native.load(), texts, matcher.table.native_table, None)
    assert np.flatnonzero(flags == native.NON_ASCII).tolist() == [12, 13]  # a combining accent, a capital sigma
    assert set(rows.tolist()) == {0, 1, 2, 6, 7, 8, 9, 10, 11, 14, 15, 16}  # 3-5 and 17 have no tokens


def test_same_hits_as_the_numpy_resolver_and_the_reference(matcher, laion_sample):
    texts = pq.read_table(laion_sample).column("TEXT").combine_chunks()
    texts = pa.concat_arrays([texts, pa.array(ODD + ["tiger shark great white shark lion's"], pa.string())])
    fast = matcher.match(texts)
    numpy_path = matcher._resolve(len(texts), *_by_row(*matcher.token_ids(texts)))
    for column in ("label", "labels", "matched_terms"):
        assert getattr(fast, column).equals(getattr(numpy_path, column))
    reference = [matcher.match_one(t) for t in texts.to_pylist()]
    assert [list(r) for r in reference] == [
        list(v) for v in zip(fast.labels.to_pylist(), fast.matched_terms.to_pylist())
    ]
    assert fast.matched_terms.to_pylist()[-1] == ["tiger shark", "great white shark", "lion"]


def test_the_general_path_resolves_in_c_too(matcher):
    ids = np.array([0, 5, 0, 7, 9], dtype=np.int64)
    rows = np.array([0, 0, 1, 1, 2], dtype=np.int64)
    lion = matcher.table.word_ids["lion"]
    ids[1] = ids[3] = lion
    hits = native.resolve(native.load(), ids, rows, matcher.table.native_ngrams)
    term = matcher.table.term_text.index("lion")
    assert hits[0].tolist() == [0, 1] and hits[1].tolist() == [term, term]


# --- the Unicode table ------------------------------------------------------------------------
def test_the_table_uses_the_apostrophes_and_separators_of_normalize():
    assert set(unicode_table.APOSTROPHES) == set(re.fullmatch(r"\[(.*)\]", APOSTROPHE_PATTERN).group(1))
    assert native.load().unicode, "the table was generated from another Python's Unicode data"


def test_every_code_point_is_cut_as_normalize_and_the_arrow_path_cut_it():
    """Each assigned non-ASCII code point in three contexts: the compiled path's tokens are
    normalize's (Python's unicodedata) and the Arrow path's (utf8proc, RE2), or the row is left
    to the general path, only when the code point's result depends on its neighbours."""
    points = [
        chr(cp) for cp in range(0x80, sys.maxunicode + 1) if unicodedata.category(chr(cp)) not in ("Cn", "Cs", "Co")
    ]
    texts = [f"Ab{c}cD {c}x {c}{c}" for c in points]
    reference = [normalize(t) for t in texts]
    vocabulary = sorted({token for tokens in reference for token in tokens})
    number = {token: i + 1 for i, token in enumerate(vocabulary)}
    table = native.TokenTable.build(vocabulary, np.arange(1, len(vocabulary) + 1))
    ids, rows, flags = native.match_rows(native.load(), pa.array(texts, pa.string()), table, None)
    cut = {}
    for token_id, row in zip(ids.tolist(), rows.tolist()):
        cut.setdefault(row, []).append(token_id)
    arrow: dict[int, list[str]] = {}
    flat, parents = tokenize_column(pa.array(texts, pa.string()))
    for token, row in zip(flat.to_pylist(), parents.tolist()):
        arrow.setdefault(row, []).append(token)
    flagged = 0
    for row, (point, tokens) in enumerate(zip(points, reference)):
        assert arrow.get(row, []) == tokens or flags[row], f"U+{ord(point):04X}: the Arrow path differs"
        if flags[row]:
            flagged += 1
            assert _left_out(point, texts[row]), f"U+{ord(point):04X} was left to the general path"
        else:
            assert cut.get(row, []) == [number[t] for t in tokens], f"U+{ord(point):04X}: {texts[row]!r}"
    assert flagged < len(points) // 10  # most of Unicode takes the compiled path


def _left_out(c: str, text: str) -> bool:
    """Whether the compiled path must leave this row to the general path."""
    normal = unicodedata.normalize("NFKC", c)
    joiners = unicode_table.composes_with_previous()
    return bool(
        "\u03a3" in normal  # a capital sigma
        or any(unicodedata.combining(x) or x in joiners for x in normal + normal.lower())
        or len(normal.lower().encode()) > unicode_table.MAX_LENGTH
        or re.search(r"[<&]|://|www\.", unicodedata.normalize("NFKC", text).lower())  # markup, after NFKC
    )


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
    ids, rows, flags = native.match_rows(native.load(), texts, table, None)
    assert ids.tolist() == [3, 5, 5, 9, 0, 0, 0] and rows.tolist() == [0] * 7 and not flags.any()


def test_random_text_is_cut_as_the_arrow_path_cuts_it():
    """Random rows of 0-120 pieces over what matters to the cutter (letters, digits, apostrophes,
    separators, non-ASCII letters, and pieces of HTML tags, entities and URLs): tokens cross the
    16- and 64-byte blocks the compiled path classifies at once, rows end at every offset, and
    markup is removed as Arrow's RE2 removes it."""
    rng = np.random.default_rng(15)
    pieces = list("abcwhtpfXYZW019 '`.:/<>&;#!-=\t\n") + ["é", "ﬁ", "Ｈ", "ｗ", "＆"]
    pieces += ["<a href=", "</b>", "<!--", "-->", "&amp;", "&#169;", "&#x1f;", "&abcdefghi;", "&#12345678;"]
    pieces += [
        "http://",
        "https://",
        "ftp://",
        "www.",
        "HTTP://",
        "://",
        "<3",
        "<a",
        "< b>",
        "%20",
        "?q=",
        "~@$*+",
        ",()",
    ]
    weights = np.array([8.0] * 18 + [4, 1, 1] + [1] * (len(pieces) - 21))
    texts = ["".join(rng.choice(pieces, size=int(n), p=weights / weights.sum())) for n in rng.integers(0, 120, 4000)]
    texts += ["www.x", "a www.", "wWw.", "x://", "<", "&", "'''", "a'", "'a", "a''b", "ww.w", "x:https://y.z/a,lion"]
    flat, parents = tokenize_column(pa.array(texts, pa.string()))
    expected: dict[int, list[str]] = {}
    for token, row in zip(flat.to_pylist(), parents.tolist()):
        expected.setdefault(row, []).append(token)
    vocabulary = sorted({token for tokens in expected.values() for token in tokens})
    table = native.TokenTable.build(vocabulary, np.arange(1, len(vocabulary) + 1))
    array = pa.array(texts, pa.string())
    for part in (array, array.slice(1)):  # the last row ends exactly at the end of the data
        ids, rows, flags = native.match_rows(native.load(), part, table, None)
        assert not flags.any()  # no code point here needs the general path
        got: dict[int, list[str]] = {}
        for token_id, row in zip(ids.tolist(), rows.tolist()):
            got.setdefault(row, []).append(vocabulary[token_id - 1])
        offset = len(texts) - len(part)
        for row in range(len(part)):
            assert got.get(row, []) == expected.get(row + offset, []), f"row {row}: {texts[row + offset]!r}"
    assert sum(1 for t in texts if re.search(r"[<&]|://|www\.", t.lower())) > 1000  # markup was exercised


def test_more_words_than_the_compiled_resolver_takes_fall_back_to_numpy():
    table = TermTable({0: ["red fox"], 1: ["fox"]}, max_ngram=native.MAX_NGRAM + 1)
    assert table.native_ngrams is None
    result = Matcher(table).match(pa.array(["a red fox", "one fox", "red"], pa.string()))
    assert result.labels.to_pylist() == [[0], [1], []]


def test_a_table_of_another_unicode_version_is_not_used(matcher, monkeypatch):
    texts = pa.array(["Ein Löwe, a lion", "a goose"], pa.string())
    expected = matcher.match(texts)
    monkeypatch.setattr(native.unicodedata, "unidata_version", "0.0.0")  # as if built by another Python
    native.load.cache_clear()
    try:
        library = native.load()
        assert library is not None and not library.unicode
        _, _, flags = native.match_rows(library, texts, matcher.table.native_table, None)
        assert flags.tolist() == [native.NON_ASCII, 0]  # the non-ASCII row goes to the general path
        assert matcher.match(texts).labels.equals(expected.labels)
    finally:
        monkeypatch.undo()
        native.load.cache_clear()


def test_the_portable_build_cuts_as_the_default_one(tmp_path, matcher, laion_sample, monkeypatch):
    """Where the compiler has no SSE2 (ARM, ...) the byte classes are computed 8 at a time in a
    64-bit word instead: built here with JANUS_NO_SIMD, it gives the same hits."""
    target = tmp_path / "_tokens.so"
    unicode_table.write(tmp_path / "_unicode_table.h")
    flags = ["-O2", "-shared", "-fPIC", "-DJANUS_UNICODE_TABLE", f"-I{tmp_path}", "-DJANUS_NO_SIMD"]
    subprocess.run(["cc", *flags, "-o", str(target), str(native.LIBRARY.with_suffix(".c"))], check=True)
    texts = pq.read_table(laion_sample).column("TEXT").combine_chunks()
    more = ["<b>Lion</b> &amp; www.x.org/goose a-goose", "see www.goose.org, a lion", "ftp://goose.org lion"]
    texts = pa.concat_arrays([texts, pa.array(ODD + more, pa.string())])
    tables = (matcher.table.native_table, matcher.table.native_ngrams)
    default = native.match_rows(native.load(), texts, *tables)
    monkeypatch.setattr(native, "LIBRARY", target)
    native.load.cache_clear()
    try:
        portable = native.match_rows(native.load(), texts, *tables)
    finally:
        monkeypatch.undo()
        native.load.cache_clear()
    assert all(np.array_equal(a, b) for a, b in zip(default, portable)) and len(default[0]) > 150


def test_rows_that_nfkc_makes_longer_than_the_room_reserved_are_redone():
    """U+FDFA is one code point (3 bytes) and four words after NFKC: the first call runs out of
    the room reserved from the byte count and is made again with more."""
    texts = pa.array(["\ufdfa " * 2000, "a lion"], pa.string())
    flat, parents = tokenize_column(texts)
    vocabulary = sorted(set(flat.to_pylist()))
    table = native.TokenTable.build(vocabulary, np.arange(1, len(vocabulary) + 1))
    ids, rows, flags = native.match_rows(native.load(), texts, table, None)
    assert not flags.any() and len(ids) == 8002 > texts.nbytes // 2
    order = np.argsort(parents, kind="stable")  # the Arrow path gives ASCII rows first
    assert [vocabulary[i - 1] for i in ids.tolist()] == [flat.to_pylist()[i] for i in order]
    assert rows.tolist() == parents[order].tolist()
