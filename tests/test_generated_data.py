"""The shipped label, term and lemma files are exactly what the committed generator writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_classnames_and_wordnet_tables_regenerate_identically(tmp_path, janus_facts):
    pytest.importorskip("open_clip")
    from janus_build.text import nltk_lemmatizer

    nltk_lemmatizer()  # WordNet must be installed (scripts/install_wordnet.sh); a clear error otherwise
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate_classnames.py"),
            "--in100",
            str(janus_facts / "in100_classes.tsv"),
            "--root",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    for name in ("in1k.tsv", "in100.tsv", "openai.tsv", "default.tsv"):
        assert (tmp_path / "classnames" / name).read_bytes() == (ROOT / "classnames" / name).read_bytes(), name
    for name in ("wordnet_noun_lemmas.txt.gz", "wordnet_noun_exceptions.txt.gz"):
        assert (tmp_path / "janus_build" / "data" / name).read_bytes() == (
            ROOT / "janus_build" / "data" / name
        ).read_bytes(), name
