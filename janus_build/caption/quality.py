"""Scoring caption clean-up against labelled examples: precision and recall of corrections.

An *edit* is one replacement of a span of the raw caption's words by other words (a correction,
a merge, a removal), found by aligning word lists with :mod:`difflib`. The edits a fixer made are
compared with the edits the label asks for: precision = right edits / edits made, recall = right
edits / edits needed. A caption left alone where it was right costs nothing; a right word
"corrected" into another costs precision; a fragment left alone costs recall.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_WORDS = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class Example:
    """One labelled caption."""

    model: str
    caption: str
    title: str | None
    expected: str


def read_examples(path: str | Path) -> list[Example]:
    """Rows of a tab-separated file with ``model``, ``caption``, ``title``, ``expected`` ('#' comments)."""
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [
        Example(row["model"], row["caption"], row["title"] or None, row["expected"])
        for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    ]


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(text)]


def edits(before: str, after: str) -> set[tuple[int, int, tuple[str, ...]]]:
    """``{(first word, last word + 1, replacement words)}`` turning ``before`` into ``after``."""
    a, b = _words(before), _words(after)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return {(i1, i2, tuple(b[j1:j2])) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"}


@dataclass(frozen=True)
class Scores:
    examples: int
    edits_needed: int
    edits_made: int
    edits_right: int
    captions_exact: int
    wrong: tuple[tuple[str, str, str], ...]  # (caption, output, expected) of captions not as labelled

    @property
    def precision(self) -> float:
        return self.edits_right / self.edits_made if self.edits_made else 1.0

    @property
    def recall(self) -> float:
        return self.edits_right / self.edits_needed if self.edits_needed else 1.0


def score(examples: Iterable[Example], fix: Callable[[str, str | None], str]) -> Scores:
    """Run ``fix(caption, title)`` over ``examples`` and score its edits against the labels."""
    needed = made = right = exact = 0
    wrong = []
    count = 0
    for example in examples:
        count += 1
        output = fix(example.caption, example.title)
        want, got = edits(example.caption, example.expected), edits(example.caption, output)
        needed, made, right = needed + len(want), made + len(got), right + len(want & got)
        if _words(output) == _words(example.expected):
            exact += 1
        else:
            wrong.append((example.caption, output, example.expected))
    return Scores(count, needed, made, right, exact, tuple(wrong))
