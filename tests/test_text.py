"""Normalisation and the shipped WordNet lemma table (checked against NLTK's own lemmatiser)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from janus_build.text import Lemmatizer, normalize


def test_normalize_strips_html_urls_and_punctuation():
    text = '<a href="http://x.com/dogs">Dog\'s</a> toys &amp; more: www.shop.com/cats 50% OFF—great_white-shark!'
    assert normalize(text) == ["dogs", "toys", "more", "50", "off", "great", "white", "shark"]
    assert normalize("") == [] and normalize("   ") == []
    assert normalize("Ünïcode CAFÉ") == ["ünïcode", "café"]


@pytest.mark.parametrize(
    "word,lemma",
    [
        ("geese", "goose"),
        ("lions", "lion"),
        ("mice", "mouse"),
        ("churches", "church"),
        ("wolves", "wolf"),
        ("sunglasses", "sunglass"),
        ("jeans", "jean"),
        ("hardrock", "hardrock"),
        ("dogs", "dog"),
    ],
)
def test_lemmas(word, lemma):
    assert Lemmatizer()(word) == lemma


def test_table_agrees_with_nltk_on_real_captions(laion_sample):
    nltk_stem = pytest.importorskip("nltk.stem")
    from janus_build.text import nltk_lemmatizer

    reference = nltk_lemmatizer()
    assert isinstance(reference, nltk_stem.WordNetLemmatizer)
    ours = Lemmatizer()
    captions = pq.read_table(laion_sample).column("TEXT").to_pylist()
    words = {t for c in captions if c for t in normalize(c)}
    words |= {"abaci", "aardwolves", "women", "boxes", "buses", "classes", "dogss", "ies", "s", ""}
    assert len(words) > 4000
    disagreements = {w: (ours(w), reference.lemmatize(w)) for w in words if ours(w) != reference.lemmatize(w)}
    assert disagreements == {}


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("I <3 my goldfish > my cat", ["i", "3", "my", "goldfish", "my", "cat"]),  # not a tag
        ("a <b>lion</b> and <img src='x.jpg'/> koala <!-- note -->", ["a", "lion", "and", "koala"]),
        ("photo:https://x.com/a,lion", ["photo", "lion"]),  # ',' ends a URL
        ("(see https://x.com/a) lion's den", ["see", "lions", "den"]),
        ("consomme\u0301 soup", ["consommé", "soup"]),  # decomposed accent composed (NFKC)
        ("\uff2c\uff49\uff4f\uff4e", ["lion"]),  # full-width letters
        ("dog\u02bcs bowl", ["dogs", "bowl"]),  # modifier-letter apostrophe
        ("\ufb01sh", ["fish"]),  # ligature
    ],
)
def test_normalize_semantics(text, tokens):
    assert normalize(text) == tokens


def test_arrow_normalisation_equals_the_reference():
    import pyarrow as pa

    from janus_build.match.matcher import normalize_column

    texts = [
        "I <3 my goldfish > my cat",
        "photo:https://x.com/a,lion",
        "consomme\u0301 \uff2c\uff49\uff4f\uff4e dog\u02bcs",
        "<a href='https://e.com/x'>Koala</a>&amp;www.shop.com/cats GREAT_white",
        "x < y > z <p class=a>b</p> &#169; &nbsp;",
        "Ünïcode CAFÉ ß ǅ \u00bd",
    ]
    # the Arrow split may leave an empty token at either end (it matches nothing, like a separator)
    arrow = [[t for t in row if t] for row in normalize_column(pa.array(texts, pa.string())).to_pylist()]
    assert arrow == [normalize(t) for t in texts]


@pytest.mark.parametrize("threshold", [0, 10**9])  # the RE2 Unicode path and the Python path for non-ASCII rows
def test_both_separator_paths_equal_the_reference_on_real_captions(laion_sample, monkeypatch, threshold):
    from janus_build.match import matcher

    monkeypatch.setattr(matcher, "UNICODE_SEPARATOR_ROWS", threshold)
    texts = pq.read_table(laion_sample).column("TEXT").combine_chunks()
    arrow = [[t for t in row if t] if row is not None else [] for row in matcher.normalize_column(texts).to_pylist()]
    assert arrow == [normalize(t) if t else [] for t in texts.to_pylist()]


def test_byte_tokenizer_equals_the_reference_on_random_text():
    """Row boundaries, apostrophes at either end, runs of punctuation, slices, nulls, non-ASCII rows."""
    import random

    import pyarrow as pa

    from janus_build.match.matcher import normalize_column

    rng = random.Random(7)
    alphabet = "abcXYZ019 '`,.-_/<>&;:!\t\n" + "éßÅ’ʼ\u00a0"
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(3000)] + [None, "", "'", "a'"]
    array = pa.array(texts, pa.string())
    for sliced in (array, array.slice(5, 2000)):
        arrow = normalize_column(sliced).to_pylist()
        assert arrow == [normalize(t) if t else [] for t in sliced.to_pylist()]
