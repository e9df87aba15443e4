"""Label sets and matching-term sets: which classes exist and which words name them.

Shipped sets live in ``classnames/`` (see classnames/README.md for the file format):

* label sets ``in1k`` (the 1000 ImageNet classes) and ``in100`` (the 100 IN100 classes);
  their class ids are ImageNet-1k indices;
* term sets ``openai`` (OpenAI's CLIP ImageNet class names, the paper's default) and
  ``default`` (the WordNet synonyms of each ImageNet synset).

Any other value is read as a TSV file with columns ``class_id``, ``name`` and (for term sets)
``terms``, so the toolkit serves label sets beyond ImageNet.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from janus_build.errors import ConfigError, InputError
from janus_build.resources import project_dir

BUILTIN_LABEL_SETS = ("in100", "in1k")
BUILTIN_TERM_SETS = ("openai", "default")
TERM_SEPARATOR = "|"


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of classes. ``ids`` are the labels written to shards."""

    name: str
    ids: tuple[int, ...]
    names: dict[int, str]
    wnids: dict[int, str]

    def __contains__(self, class_id: object) -> bool:
        return class_id in self.names

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TermSet:
    """Matching terms per class id (raw strings; :mod:`janus_build.match` normalises them)."""

    name: str
    terms: dict[int, tuple[str, ...]]
    names: dict[int, str]


def _read_tsv(path: Path, required: tuple[str, ...], flag: str) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"{flag}: no such file {path} (expected one of the built-in names or a TSV file)")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [
                row for row in csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
            ]
            header = list(rows[0].keys()) if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{flag} {path}: unreadable ({exc})") from None
    if not rows:
        raise InputError(
            f"{flag} {path}: no rows (expected a tab-separated header {', '.join(required)} and one row per class)"
        )
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{flag} {path}: missing column(s) {', '.join(missing)}; columns present: {', '.join(header)}")
    return rows


def _class_id(row: dict[str, str], path: Path, line: int, flag: str) -> int:
    value = (row.get("class_id") or "").strip()
    try:
        class_id = int(value)
    except ValueError:
        raise InputError(f"{flag} {path}, line {line}: class_id {value!r} is not an integer") from None
    if class_id < 0:
        raise InputError(f"{flag} {path}, line {line}: class_id {class_id} is negative (-1 means 'no label')")
    return class_id


def _resolve(value: str, builtins: tuple[str, ...]) -> tuple[str, Path]:
    if value in builtins:
        return value, project_dir("classnames") / f"{value}.tsv"
    return Path(value).stem, Path(value)


@lru_cache(maxsize=16)
def load_label_set(value: str = "in100") -> LabelSet:
    """Load a built-in label set by name or a user TSV (``class_id``, ``name``[, ``wnid``])."""
    name, path = _resolve(value, BUILTIN_LABEL_SETS)
    rows = _read_tsv(path, ("class_id", "name"), "--labels")
    ids: list[int] = []
    names: dict[int, str] = {}
    wnids: dict[int, str] = {}
    for line, row in enumerate(rows, start=2):
        class_id = _class_id(row, path, line, "--labels")
        if class_id in names:
            raise InputError(f"--labels {path}, line {line}: class_id {class_id} appears twice")
        ids.append(class_id)
        names[class_id] = (row.get("name") or "").strip()
        if row.get("wnid"):
            wnids[class_id] = row["wnid"].strip()
    return LabelSet(name=name, ids=tuple(ids), names=names, wnids=wnids)


@lru_cache(maxsize=16)
def load_term_set(value: str = "openai") -> TermSet:
    """Load a built-in term set by name or a user TSV (``class_id``, ``name``, ``terms``).

    ``terms`` holds the matching terms of the class separated by ``|``; an empty ``terms``
    cell falls back to the class name.
    """
    name, path = _resolve(value, BUILTIN_TERM_SETS)
    rows = _read_tsv(path, ("class_id", "name"), "--classnames")
    terms: dict[int, tuple[str, ...]] = {}
    names: dict[int, str] = {}
    for line, row in enumerate(rows, start=2):
        class_id = _class_id(row, path, line, "--classnames")
        class_name = (row.get("name") or "").strip()
        raw = [t.strip() for t in (row.get("terms") or "").split(TERM_SEPARATOR) if t.strip()]
        if not raw and not class_name:
            raise InputError(f"--classnames {path}, line {line}: class {class_id} has neither a name nor terms")
        merged = list(dict.fromkeys([*terms.get(class_id, ()), *(raw or [class_name])]))
        terms[class_id] = tuple(merged)
        names.setdefault(class_id, class_name)
    return TermSet(name=name, terms=terms, names=names)


def terms_for(label_set: LabelSet, term_set: TermSet) -> dict[int, tuple[str, ...]]:
    """Terms of every class of ``label_set``, in label-set order.

    Raises:
        ConfigError: a class of the label set has no terms in the term set.
    """
    missing = [c for c in label_set.ids if c not in term_set.terms]
    if missing:
        shown = ", ".join(str(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(
            f"--classnames {term_set.name}: no terms for {len(missing)} class(es) of --labels {label_set.name}: {shown}"
        )
    return {c: term_set.terms[c] for c in label_set.ids}
