"""The query language: parsing, problems with positions, local application, the IN100 file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.errors import InputError
from janus_build.fetch.queries import check_file, load_queries, parse, read_queries_file

ROOT = Path(__file__).resolve().parent.parent
IN100 = ROOT / "queries" / "in100.toml"


def _errors(text):
    return [(p.message, p.position) for p in parse(text).problems if p.severity == "error"]


def test_structure_of_the_bee_query():
    query = parse("bumblebee OR wasp OR hornet -jet -airplane AND flower")
    assert [[t.text for t in g] for g in query.groups] == [["bumblebee", "wasp", "hornet"], ["flower"]]
    assert [t.text for t in query.exclusions] == ["jet", "airplane"]
    assert query.ok


def test_phrases_and_canonical_text():
    query = parse('"great  white shark" -cake')
    assert query.groups[0][0].phrase and query.groups[0][0].words == ("great", "white", "shark")
    assert query.text() == '"great white shark" -cake'
    assert parse(query.text()).text() == query.text()


@pytest.mark.parametrize(
    "text, message, column",
    [
        ("lion -", "dangling '-'", 6),
        ("lion - cat", "dangling '-'", 6),
        ('"lion king', "unbalanced quote", 1),
        ("", "empty query", 0),
        ("   ", "empty query", 0),
        ("-cat -dog", "empty query", 0),
        ("lion -Lion", "excludes a term the query also requires", 6),
        ('"sea lion" -"sea lion"', "excludes a term the query also requires", 12),
        ("OR lion", "OR needs a required term before it", 1),
        ("lion AND", "AND needs a required term after it", 6),
        ("lion OR -cat", "OR needs a required term after it", 6),
        ('"" lion', "empty quoted phrase", 1),
        ('lion"s', "a quote inside a word", 5),
    ],
)
def test_problems_name_the_column(text, message, column):
    errors = _errors(text)
    assert any(message in m and c == column for m, c in errors), errors


def test_every_problem_is_reported_not_just_the_first():
    errors = _errors('lion - -lion "cat')
    assert len(errors) >= 3  # dangling '-', unbalanced quote, excluded-and-required


def test_repeated_exclusion_is_a_warning_only():
    query = parse("teapot -tea -Tea")
    assert query.ok and [p.severity for p in query.problems] == ["warning"]


def test_local_application_names_the_rule():
    query = parse("bumblebee OR wasp -jet AND flower")
    assert query.explain_drop("A wasp", "flower garden", "") is None
    assert query.explain_drop("Wasps!", "flowers", "") is None  # plural s ignored
    assert query.explain_drop("A wasp", "flower", "seen near a jet") == "exclude:jet"
    assert query.explain_drop("A wasp", "", "") == "require:flower"
    assert query.explain_drop("A hornet", "flower", "") == "require:bumblebee|wasp"
    shark = parse('"great white shark" -cake')
    assert shark.explain_drop("", "greatwhiteshark", "") is None  # Flickr tags drop spaces
    assert shark.explain_drop("white shark great", "", "") == 'require:"great white shark"'
    assert shark.explain_drop("Great White Shark", "", "birthday cakes") == "exclude:cake"
    assert parse("lion").explain_drop("lionfish", "", "") == "require:lion"


def test_every_in100_query_passes_check():
    problems = check_file(IN100)
    assert [str(p) for p in problems if p.problem.severity == "error"] == []
    classes = load_queries(IN100)
    assert len(classes) == 100 and len({c.class_id for c in classes}) == 100
    for cls in classes:
        assert cls.target and cls.paper["total"] == cls.target
        for query in cls.queries:
            assert query.ok and query.groups, (cls.class_id, query.source)
            assert "- " not in query.source and '""' not in query.source
    by_id = {c.class_id: c for c in classes}
    assert [q.source for q in by_id[579].queries] == ["kawai grand piano", "steinway grand piano"]
    assert by_id[2].queries[0].groups[0][0].phrase
    assert [t.text for t in by_id[309].queries[0].groups[-1]] == ["flower"]


def test_queries_check_cli(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["queries", "check", str(IN100)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[class]]\nid = 7\nname = "x"\nqueries = ["lion -", "\\"a b"]\n[[class]]\nid = 8\nname = "y"\nqueries = [""]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "janus_build", "queries", "check", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "class 7 (x), query 1 'lion -', column 6" in result.stderr
    assert "class 7 (x), query 2" in result.stderr and "unbalanced quote" in result.stderr
    assert "class 8 (y), query 1 ''" in result.stderr and "empty query" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_queries_refuses_bad_files_and_unknown_classes(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[class]]\nid = 1\nname = "x"\nqueries = ["a -a"]\n')
    with pytest.raises(InputError, match="excludes a term"):
        load_queries(bad)
    with pytest.raises(InputError, match="--classes: 5"):
        load_queries(IN100, classes=[291, 5])
    (tmp_path / "broken.toml").write_text("[[class]\n")
    with pytest.raises(InputError, match="not TOML"):
        read_queries_file(tmp_path / "broken.toml")


def test_generator_reproduces_the_committed_file(janus_facts, tmp_path):
    out = tmp_path / "in100.toml"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate_queries.py"),
            str(janus_facts / "in100_classes.tsv"),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_text() == IN100.read_text()


def test_malformed_files_are_input_errors_not_tracebacks(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_queries_file(tmp_path)  # a directory
    not_tables = tmp_path / "ints.toml"
    not_tables.write_text("class = [1, 2]\n")
    assert [p.problem.message for p in check_file(not_tables)] == ["expected a [[class]] table"] * 2
    bad_paper = tmp_path / "paper.toml"
    bad_paper.write_text('[[class]]\nid = 3\nname = "x"\nqueries = ["x"]\npaper = 5\n')
    assert [p.problem.message for p in check_file(bad_paper)] == ["'paper' must be a table"]
