"""The Flickr search-query language of the paper's Table 8, its checker and its local application.

A query is a sequence of tokens separated by whitespace:

* ``word`` — a required term;
* ``"a quoted phrase"`` — a required phrase (its words consecutive, or one tag spelling it);
* ``-word`` / ``-"a phrase"`` — an exclusion: a photo whose title, tags or description holds
  it is dropped (Table 8's note);
* ``A OR B`` — either term satisfies that requirement (``OR`` binds adjacent required terms);
* ``A AND B`` — both are required (the same as ``A B``; kept because Table 8 writes it).

Exclusions may appear anywhere (``... -jet AND flower`` is fine). Matching is case-insensitive
on word tokens; a trailing plural ``s`` is ignored on both sides, so ``-cake`` also drops
``cakes``. Flickr's own handling of ``OR``, ``AND`` and quotes is undocumented, so the fetch
stage sends the query to the API *and* applies :meth:`Query.explain_drop` to every photo.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, InputError

_WORD = re.compile(r"[0-9a-z]+")
OPERATORS = ("OR", "AND")


@dataclasses.dataclass(frozen=True)
class Term:
    """A word or a quoted phrase (``words`` holds its lower-cased word tokens)."""

    text: str
    words: tuple[str, ...]
    phrase: bool
    position: int  # 1-based character column in the query string

    def render(self) -> str:
        return f'"{self.text}"' if self.phrase else self.text


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem found in a query; ``severity`` is ``error`` (fails the check) or ``warning``."""

    message: str
    position: int  # 1-based column; 0 = the whole query
    severity: str = "error"


@dataclasses.dataclass(frozen=True)
class Query:
    """A parsed query: AND over ``groups`` (each an OR of terms), minus ``exclusions``."""

    source: str
    groups: tuple[tuple[Term, ...], ...]
    exclusions: tuple[Term, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def text(self) -> str:
        """The canonical string sent to Flickr's ``text`` parameter."""
        parts = [" OR ".join(t.render() for t in group) for group in self.groups]
        required = " AND ".join(parts) if any(len(g) > 1 for g in self.groups) and len(parts) > 1 else " ".join(parts)
        excluded = " ".join(f"-{t.render()}" for t in self.exclusions)
        return f"{required} {excluded}".strip()

    def explain_drop(self, title: str | None, tags: str | None, description: str | None) -> str | None:
        """Apply the query locally to a photo; return the rule that drops it, or None to keep it.

        Rules are named ``exclude:<term>`` (an excluded term is present) or
        ``require:<term|term>`` (no term of a required group is present).
        """
        doc = _Document(title or "", tags or "", description or "")
        for term in self.exclusions:
            if doc.has(term):
                return f"exclude:{term.render()}"
        for group in self.groups:
            if not any(doc.has(term) for term in group):
                return "require:" + "|".join(t.render() for t in group)
        return None


def _norm(word: str) -> str:
    # A trailing plural "s" is ignored ("cakes" ~ "cake"); short words are left alone.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(text: str) -> tuple[str, ...]:
    return tuple(_norm(w) for w in _WORD.findall(text.lower()))


class _Document:
    """A photo's title, tags and description as normalised word sequences and tag spellings."""

    def __init__(self, title: str, tags: str, description: str) -> None:
        self.sequences = [_words(title), _words(description)]
        tag_list = tags.lower().split()
        self.sequences.extend(_words(tag) for tag in tag_list)
        self.tags = {_norm(re.sub(r"[^0-9a-z]", "", t)) for t in tag_list}
        self.tokens = {w for seq in self.sequences for w in seq}

    def has(self, term: Term) -> bool:
        if not term.words:
            return False
        if len(term.words) == 1:
            return term.words[0] in self.tokens or term.words[0] in self.tags
        if _norm("".join(term.words)) in self.tags:  # Flickr tags drop spaces: "greatwhiteshark"
            return True
        n = len(term.words)
        return any(seq[i : i + n] == term.words for seq in self.sequences for i in range(len(seq) - n + 1))


# --- parsing -------------------------------------------------------------------------------
_Item = tuple[str, Any, int]  # (kind, value, column); kind: term | neg | op


def _lex_phrase(
    source: str, column: int, start: int, negative: bool, problems: list[Problem]
) -> tuple[int, _Item | None]:
    """A quoted phrase starting at ``source[start]``; returns (position after it, item or None)."""
    end = source.find('"', start + 1)
    if end < 0:
        problems.append(Problem('unbalanced quote: no closing "', start + 1))
        return len(source), None
    phrase = source[start + 1 : end]
    pos = end + 1
    if not _WORD.search(phrase.lower()):
        problems.append(Problem('empty quoted phrase ""', start + 1))
        return pos, None
    if pos < len(source) and not source[pos].isspace():
        problems.append(Problem("a quoted phrase must be followed by a space", pos + 1))
    term = Term(" ".join(phrase.split()), _words(phrase), True, column)
    return pos, ("neg" if negative else "term", term, column)


def _lex_word(
    source: str, column: int, start: int, negative: bool, problems: list[Problem]
) -> tuple[int, _Item | None]:
    """A bare word (or operator) starting at ``source[start]``; returns (position after it, item or None)."""
    end = start
    while end < len(source) and not source[end].isspace():
        end += 1
    raw = source[start:end]
    if '"' in raw:
        problems.append(Problem("a quote inside a word (unbalanced quotes?)", start + 1 + raw.index('"')))
        raw = raw.replace('"', "")
    if not negative and raw in OPERATORS:
        return end, ("op", raw, column)
    if not _WORD.search(raw.lower()):
        problems.append(Problem(f"{raw!r} holds no letters or digits", column))
        return end, None
    return end, ("neg" if negative else "term", Term(raw, _words(raw), False, column), column)


def _lex(source: str, problems: list[Problem]) -> list[_Item]:
    items: list[_Item] = []
    pos = 0
    while pos < len(source):
        if source[pos].isspace():
            pos += 1
            continue
        column = pos + 1
        negative = source[pos] == "-"
        start = pos + 1 if negative else pos
        if negative and (start >= len(source) or source[start].isspace()):
            problems.append(Problem("dangling '-' (write -word with no space)", column))
            pos = start
            continue
        lex = _lex_phrase if source[start] == '"' else _lex_word
        pos, item = lex(source, column, start, negative, problems)
        if item is not None:
            items.append(item)
    return items


def _check_operator(items: list[_Item], index: int, last_kind: str | None, problems: list[Problem]) -> bool:
    """Problems of the operator at ``items[index]``; True when it is an OR joining two terms."""
    _, value, column = items[index]
    if last_kind in (None, "op"):
        problems.append(Problem(f"{value} needs a required term before it", column))
    elif value == "OR" and last_kind != "term":
        problems.append(Problem("OR must follow a required term (not an exclusion)", column))
    following = items[index + 1][0] if index + 1 < len(items) else None
    if following != "term":
        problems.append(Problem(f"{value} needs a required term after it", column))
    return value == "OR" and last_kind == "term"


def _structure(items: list[_Item], problems: list[Problem]) -> tuple[list[list[Term]], list[Term]]:
    """Group the items: required groups (each an OR of terms) and exclusions."""
    groups: list[list[Term]] = []
    exclusions: list[Term] = []
    pending_or = False
    last_kind: str | None = None
    for index, (kind, value, column) in enumerate(items):
        if kind == "op":
            pending_or = _check_operator(items, index, last_kind, problems)
        elif kind == "neg":
            if value.render().lower() in {t.render().lower() for t in exclusions}:
                problems.append(Problem(f"exclusion -{value.render()} repeated", column, "warning"))
            else:
                exclusions.append(value)
            pending_or = False
        else:
            if pending_or and groups:
                groups[-1].append(value)
            else:
                groups.append([value])
            pending_or = False
        last_kind = kind
    return groups, exclusions


def parse(source: str) -> Query:
    """Parse a query string; problems are collected in ``Query.problems`` (never raised)."""
    problems: list[Problem] = []
    groups, exclusions = _structure(_lex(source, problems), problems)
    if not groups:
        problems.append(Problem("empty query: no required term" if source.strip() else "empty query", 0))
    required = {t.words: t for g in groups for t in g}
    for term in exclusions:
        if term.words in required:
            problems.append(
                Problem(
                    f"-{term.render()} excludes a term the query also requires ({required[term.words].render()})",
                    term.position,
                )
            )
    return Query(source, tuple(tuple(g) for g in groups), tuple(exclusions), tuple(problems))


# --- query files ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClassQueries:
    """One class of a queries file."""

    class_id: int
    name: str
    queries: tuple[Query, ...]
    target: int | None = None
    paper: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError("reading queries files on Python 3.10 needs the 'tomli' package") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such queries file") from None
    except OSError as exc:  # a directory, no permission, ...
        raise InputError(f"{path}: cannot read the queries file ({exc.strerror or exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not a valid queries file: not TOML ({exc})") from None


def default_queries_file() -> Path:
    """``queries/in100.toml`` as shipped with the package."""
    from janus_build.resources import project_dir

    return project_dir("queries") / "in100.toml"


@dataclasses.dataclass(frozen=True)
class FileProblem:
    class_id: int | None
    name: str
    query_index: int | None
    query: str | None
    problem: Problem

    def __str__(self) -> str:
        where = f"class {self.class_id} ({self.name})" if self.class_id is not None else self.name
        if self.query is not None:
            where += f", query {self.query_index + 1} {self.query!r}"  # type: ignore[operator]
            if self.problem.position:
                where += f", column {self.problem.position}"
        return f"{where}: {self.problem.severity}: {self.problem.message}"


def read_queries_file(path: str | Path) -> tuple[list[ClassQueries], list[FileProblem]]:
    """Read a queries TOML file (``[[class]]`` tables); return the classes and every problem found.

    Each ``[[class]]`` needs ``id`` (int), ``name`` and ``queries`` (a list of strings, or one
    string); ``target`` (int) and ``paper`` (a table) are optional.
    """
    path = Path(path)
    data = _load_toml(path)
    entries = data.get("class")
    problems: list[FileProblem] = []
    classes: list[ClassQueries] = []
    if not isinstance(entries, list) or not entries:
        problems.append(FileProblem(None, str(path), None, None, Problem("no [[class]] entries", 0)))
        return classes, problems
    seen: set[int] = set()
    for number, entry in enumerate(entries, 1):
        where = f"{path} [[class]] #{number}"
        if not isinstance(entry, dict):
            problems.append(FileProblem(None, where, None, None, Problem("expected a [[class]] table", 0)))
            continue
        class_id, name = entry.get("id"), entry.get("name")
        if not isinstance(class_id, int) or isinstance(class_id, bool):
            problems.append(FileProblem(None, where, None, None, Problem("'id' must be an integer", 0)))
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(FileProblem(class_id, where, None, None, Problem("'name' must be a non-empty string", 0)))
            name = str(name)
        if class_id in seen:
            problems.append(FileProblem(class_id, name, None, None, Problem("class id appears twice", 0)))
        seen.add(class_id)
        raw = entry.get("queries", entry.get("query"))
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(q, str) for q in raw):
            problems.append(
                FileProblem(class_id, name, None, None, Problem("'queries' must be a non-empty list of strings", 0))
            )
            continue
        parsed = []
        for qi, text in enumerate(raw):
            query = parse(text)
            parsed.append(query)
            problems.extend(FileProblem(class_id, name, qi, text, p) for p in query.problems)
        target = entry.get("target")
        if target is not None and (not isinstance(target, int) or target <= 0):
            problems.append(FileProblem(class_id, name, None, None, Problem("'target' must be a positive integer", 0)))
            target = None
        paper = entry.get("paper", {})
        if not isinstance(paper, dict):
            problems.append(FileProblem(class_id, name, None, None, Problem("'paper' must be a table", 0)))
            paper = {}
        classes.append(ClassQueries(class_id, name, tuple(parsed), target, dict(paper)))
    return classes, problems


def load_queries(path: str | Path | None = None, classes: Iterable[int] | None = None) -> list[ClassQueries]:
    """Read a queries file, failing on any error, optionally keeping only ``classes`` (in file order).

    Raises:
        InputError: the file has errors (all are listed) or a requested class is not in it.
    """
    path = Path(path) if path is not None else default_queries_file()
    loaded, problems = read_queries_file(path)
    errors = [p for p in problems if p.problem.severity == "error"]
    if errors:
        raise InputError(f"{path}: {len(errors)} problem(s): " + "; ".join(str(p) for p in errors))
    if classes is not None:
        wanted = list(classes)
        by_id = {c.class_id: c for c in loaded}
        missing = [c for c in wanted if c not in by_id]
        if missing:
            raise InputError(f"--classes: {', '.join(map(str, missing))} not in {path}")
        loaded = [c for c in loaded if c.class_id in set(wanted)]
    return loaded


def check_file(path: str | Path) -> list[FileProblem]:
    """Every problem of a queries file (errors and warnings)."""
    return read_queries_file(path)[1]


def render_problems(problems: Sequence[FileProblem]) -> list[str]:
    return [str(p) for p in problems]
