"""Label sets and term sets: the shipped ones agree with the paper's facts; user files are checked."""

from __future__ import annotations

import csv
import json

import pytest

from janus_build.errors import ConfigError, InputError
from janus_build.labels import load_label_set, load_term_set, terms_for
from janus_build.text import normalize


def test_in1k_and_in100(janus_facts):
    in1k = load_label_set("in1k")
    assert len(in1k) == 1000 and in1k.ids == tuple(range(1000))
    assert in1k.wnids[0] == "n01440764"
    in100 = load_label_set("in100")
    expected = json.loads((janus_facts / "in100_shift_indices.json").read_text())["in100"]
    assert list(in100.ids) == expected
    with (janus_facts / "in100_classes.tsv").open() as handle:
        facts = {int(r["in1k_index"]): r for r in csv.DictReader(handle, delimiter="\t")}
    for class_id in in100.ids:
        assert in100.wnids[class_id] == facts[class_id]["wnid"]
        # the facts file prints OpenAI's names without punctuation ("ram adult male sheep")
        assert normalize(in100.names[class_id]) == normalize(facts[class_id]["openai_classname"])


def test_term_sets():
    openai = load_term_set("openai")
    assert openai.terms[99] == ("goose",)
    assert openai.terms[2] == ("great white shark",)
    default = load_term_set("default")
    assert "Tinca tinca" in default.terms[0] and "tench" in default.terms[0]
    assert set(terms_for(load_label_set("in100"), openai)) == set(load_label_set("in100").ids)


def test_custom_files(tmp_path):
    labels = tmp_path / "birds.tsv"
    labels.write_text("class_id\tname\tterms\n0\tcorvid\tcrow|raven|magpie\n1\tgull\tseagull|gull\n")
    label_set = load_label_set(str(labels))
    term_set = load_term_set(str(labels))
    assert label_set.ids == (0, 1)
    assert terms_for(label_set, term_set)[0] == ("crow", "raven", "magpie")


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="--labels: no such file"):
        load_label_set(str(tmp_path / "missing.tsv"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tname\n0\tx\n")
    with pytest.raises(InputError, match="missing column.*class_id.*columns present: id, name"):
        load_label_set(str(bad))
    bad2 = tmp_path / "bad2.tsv"
    bad2.write_text("class_id\tname\n0\tx\nseven\ty\n")
    with pytest.raises(InputError, match="line 3: class_id 'seven' is not an integer"):
        load_label_set(str(bad2))
    labels = tmp_path / "l.tsv"
    labels.write_text("class_id\tname\n0\ta\n5\tb\n")
    terms = tmp_path / "t.tsv"
    terms.write_text("class_id\tname\tterms\n0\ta\ta\n")
    with pytest.raises(ConfigError, match="no terms for 1 class.*: 5"):
        terms_for(load_label_set(str(labels)), load_term_set(str(terms)))
