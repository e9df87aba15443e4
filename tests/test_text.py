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
