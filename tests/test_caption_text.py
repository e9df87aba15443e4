"""Spell checking and title merging of captions (janus_build.caption.spelling / .merge)."""

from __future__ import annotations

import pytest

from janus_build.caption.merge import merge_title, prose_caption, title_words
from janus_build.caption.run import protected_words
from janus_build.caption.spelling import SpellFixer, words_of


@pytest.fixture(scope="module")
def class_words() -> set[str]:
    return protected_words("openai")


@pytest.fixture(scope="module")
def fixer(class_words) -> SpellFixer:
    return SpellFixer(class_words)


@pytest.fixture(scope="module")
def plain() -> SpellFixer:
    return SpellFixer()


def test_fragments_and_misspellings_are_fixed(fixer):
    assert fixer.fix("a dog sittting on the grasss") == "a dog sitting on the grass"
    assert fixer.fix("a birdj on a brannch") == "a bird on a branch"
    # Capitalisation of a corrected word is kept; known words and punctuation are untouched.
    assert fixer.fix("Sittting dog, on grass.") == "Sitting dog, on grass."


def test_class_names_are_never_corrected(fixer, plain, class_words):
    caption = "a vizsla next to a pufferfish and a clownfish"
    assert {"vizsla", "pufferfish", "clownfish"} <= class_words
    assert fixer.fix(caption) == caption
    # Without the class words the dictionary would "correct" them: the protection is what keeps them.
    assert plain.fix(caption) != caption


def test_class_words_become_correction_targets(fixer):
    assert fixer.fix("a vizslaa in a field") == "a vizsla in a field"


def test_title_words_are_left_alone_for_that_sample_only(fixer):
    assert fixer.fix("a goldfnch on a twig", title="Goldfnch at dawn") == "a goldfnch on a twig"
    assert fixer.fix("a goldfnch on a twig") == "a goldfinch on a twig"
    # ... and the title did not leak into the dictionary for later samples.
    assert fixer.fix("a goldfnch on a twig", title="something else") == "a goldfinch on a twig"


def test_cost_is_bounded_and_corrections_cached():
    fixer = SpellFixer(long_token_length=10, max_token_length=20)
    long_token = "skateboarderrrrrrrrrrs"  # 22 letters: beyond max_token_length, left alone
    assert fixer.fix(f"a {long_token} trick") == f"a {long_token} trick"
    # 12 letters: distance 1 only, so a word two edits away is not searched for ...
    assert fixer.correct("photografhpy") == "photografhpy"
    # ... which a checker allowed distance 2 on such tokens would have found.
    assert SpellFixer(long_token_length=20).correct("photografhpy") == "photography"
    # Tokens with digits / other characters are not words to correct.
    assert fixer.fix("a 747 on runway 27L") == "a 747 on runway 27L"
    misses = fixer.cache_misses
    for _ in range(3):
        fixer.correct("sittting")
    assert fixer.cache_misses == misses + 1 and fixer.cache_hits >= 2


def test_words_of_splits_terms():
    assert words_of(["man-eating shark", "Great White"]) == {"man", "eating", "shark", "great", "white"}


def test_merge_appends_missing_title_words_once_in_title_order():
    assert (
        merge_title("a bird sitting on a branch", "Goldfinch on a Branch, goldfinch!")
        == "a bird sitting on a branch Goldfinch"
    )
    assert merge_title("a dog on the grass", "Rex the Dog - Summer 2019") == "a dog on the grass Rex - Summer 2019"


def test_merge_drops_camera_file_names_and_handles_missing_parts():
    assert title_words("IMG_0042.JPG DSC01234 p1010001 Lion") == ["Lion"]
    assert merge_title("a lion", "IMG_0042.JPG") == "a lion"
    assert merge_title("a lion", None) == "a lion"
    assert merge_title("a lion", "") == "a lion"
    assert merge_title(None, None) is None


def test_prose_caption_prefers_a_non_blank_human_caption():
    assert prose_caption("A woman walks her dog.", "a dog Rex") == ("A woman walks her dog.", "human")
    assert prose_caption("   ", "a dog Rex") == ("a dog Rex", "blip_title")
    assert prose_caption(None, "a dog Rex") == ("a dog Rex", "blip_title")
