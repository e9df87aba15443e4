"""janus match: strategies, semantics, stats and gates, bad input, resume — on real and made-up captions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.errors import ConfigError, GateError, InputError, OutputError, SchemaError
from janus_build.labels import load_label_set, load_term_set, terms_for
from janus_build.match import MatchConfig, run_match
from janus_build.match.matcher import Matcher, TermTable


def matcher(labels: str = "in1k", classnames: str = "openai", max_ngram: int = 3) -> Matcher:
    return Matcher(TermTable(terms_for(load_label_set(labels), load_term_set(classnames)), max_ngram=max_ngram))


@pytest.fixture(scope="module")
def in1k() -> Matcher:
    return matcher()


def labels_of(m: Matcher, texts: list, strategy: str = "sc") -> list[int]:
    result = m.match(pa.array(texts, pa.string()))
    return m.choose(result, strategy).to_pylist()


def write(path: Path, **columns) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


# --- semantics -----------------------------------------------------------------------------
def test_strategies(in1k):
    texts = ["a goose and a lion by the lake", "Lions!", "nothing to see here", None, ""]
    assert labels_of(in1k, texts, "sc") == [99, 291, -1, -1, -1]
    assert labels_of(in1k, texts, "strict") == [-1, 291, -1, -1, -1]
    assert labels_of(in1k, texts, "mc") == [99, 291, -1, -1, -1]
    result = in1k.match(pa.array(texts, pa.string()))
    assert result.labels.to_pylist() == [[99, 291], [291], [], [], []]
    assert result.matched_terms.to_pylist()[0] == ["goose", "lion"]


def test_strict_counts_classes_not_hits(in1k):
    # the authors' strict counted repeated hits of one class as several classes
    assert labels_of(in1k, ["goose goose geese"], "strict") == [99]


def test_lemmatised_terms_and_captions(in1k):
    # terms are lemmatised like captions, so plural-only class names match (the authors' never did)
    assert labels_of(in1k, ["jeans on sale", "red sports cars racing"]) == [608, 817]
    # "sunglass" (836) and "sunglasses" (837) share a lemma, so both classes match
    assert in1k.match(pa.array(["new sunglasses for summer"])).labels.to_pylist() == [[836, 837]]
    assert labels_of(in1k, ["GEESE over the marsh", "the dog's bowl"]) == [99, -1]


def test_longest_match_wins_at_a_position(in1k):
    # "tiger shark" (3) must not be read as "tiger" (292) followed by a shark
    result = in1k.match(pa.array(["tiger shark in the bahamas", "a tiger in the grass"], pa.string()))
    assert result.labels.to_pylist() == [[3], [292]]
    assert result.matched_terms.to_pylist() == [["tiger shark"], ["tiger"]]


def test_ambiguous_term_gives_every_class_in_label_order():
    wordnet = matcher("in1k", "default")  # "crane" is a synonym of both the bird and the machine
    result = wordnet.match(pa.array(["a crane by the water"], pa.string()))
    assert result.labels.to_pylist() == [[134, 517]]
    assert wordnet.choose(result, "sc").to_pylist() == [134]
    assert wordnet.choose(result, "strict").to_pylist() == [-1]
    assert wordnet.choose(result, "mc").to_pylist() == [134]


def test_html_urls_and_punctuation(in1k):
    texts = [
        '<a href="https://shop.example/goose-feathers">Koala</a> plush',
        "www.lion.example/koala.jpg",
        "lion,koala;goose",
    ]
    assert in1k.match(pa.array(texts, pa.string())).labels.to_pylist() == [[105], [], [291, 105, 99]]


def test_mc_caps_at_25_classes():
    m = matcher()
    names = [
        load_label_set("in1k").names[i]
        for i in (
            1,
            2,
            6,
            8,
            13,
            18,
            19,
            22,
            23,
            76,
            84,
            88,
            99,
            105,
            107,
            130,
            291,
            309,
            310,
            340,
            386,
            388,
            954,
            950,
            951,
            963,
            966,
            980,
        )
    ]
    result = m.match(pa.array([" , ".join(names)], pa.string()))
    assert len(result.labels.to_pylist()[0]) == 25


def test_max_ngram_limits_terms():
    two = matcher(max_ngram=2)
    assert labels_of(two, ["great white shark"]) == [-1]  # 3 words: beyond --max-ngram 2
    assert labels_of(matcher(max_ngram=3), ["great white shark"]) == [2]


def test_default_term_set_uses_wordnet_synonyms():
    m = matcher("in100", "default")
    assert labels_of(m, ["Branta canadensis at the pond"]) == [-1]  # not a synonym of goose (99)
    assert labels_of(m, ["a Panthera leo on the rock"]) == [291]


def test_custom_label_file(tmp_path):
    file = tmp_path / "birds.tsv"
    file.write_text("class_id\tname\tterms\n0\tcorvid\tcrow|raven|magpie\n1\tgull\tseagull|herring gull\n")
    m = matcher(str(file), str(file))
    assert labels_of(m, ["two ravens on a fence", "herring gulls at the harbour", "a lion"], "mc") == [0, 1, -1]


def test_vectorised_equals_reference_on_real_laion(laion_sample, in1k):
    texts = pq.read_table(laion_sample).column("TEXT").combine_chunks()
    result = in1k.match(texts)
    vector = list(zip(result.labels.to_pylist(), result.matched_terms.to_pylist()))
    reference = [in1k.match_one(t) for t in texts.to_pylist()]
    assert [tuple(r) for r in reference] == [tuple(v) for v in vector]
    labelled = sum(1 for labels, _ in vector if labels)
    assert 120 < labelled < 260  # ~17% of these captions name an ImageNet class (data README)


# --- the stage -----------------------------------------------------------------------------
def test_stage_outputs_and_stats(tmp_path, laion_sample):
    out = tmp_path / "out"
    stats = run_match(MatchConfig(inputs=(str(laion_sample),), out=str(out), labels="in1k"))
    table = pq.read_table(out / "00000.parquet")
    source = pq.read_table(laion_sample)
    assert table.column_names == source.column_names + ["key", "label", "labels", "matched_terms"]
    assert table.column("TEXT").equals(source.column("TEXT"))
    assert table.schema.field("label").type == pa.int32()
    assert table.schema.field("labels").type == pa.list_(pa.int32())
    assert table.column("key").to_pylist()[:2] == ["laion_usample_u1000-0", "laion_usample_u1000-1"]
    columns = pq.ParquetFile(out / "00000.parquet").metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)}
    assert "RLE_DICTIONARY" not in encodings["key"]  # unique: a dictionary would be wasted work
    assert all("RLE_DICTIONARY" in encodings[c] for c in ("TEXT", "label", "labels.list.element"))
    on_disk = json.loads((out / "_stats.json").read_text())
    assert on_disk == stats
    labels = table.column("label").to_pylist()
    assert stats["rows"] == 1000 and stats["labelled"] == sum(1 for v in labels if v >= 0)
    assert stats["utilization"] == pytest.approx(stats["labelled"] / 1000, abs=1e-6)
    assert sum(stats["per_class"].values()) == stats["labelled"]
    assert json.loads((out / "_manifest.json").read_text())["completed"] is True


def test_truth_figures_and_plot(tmp_path):
    data = write(
        tmp_path / "cap.parquet",
        caption=["a goose", "a lion", "a koala", "nothing", "goose and lion"],
        truth=pa.array([99, 99, 105, 291, 291], pa.int32()),
    )
    stats = run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), truth_col="truth"))
    assert stats["labelled"] == 4 and stats["correct"] == 2  # goose ok, lion wrong, koala ok, goose(sc) wrong
    assert stats["label_accuracy"] == 0.5 and stats["dataset_utilization"] == 0.4
    assert stats["per_class_accuracy"] == {"99": 0.5, "105": 1.0, "291": 0.0}
    assert (tmp_path / "o" / "_per_class_accuracy.png").stat().st_size > 1000


def test_gates_exit_3_after_writing_stats(tmp_path):
    data = write(tmp_path / "cap.parquet", caption=["a goose", "a lion"], truth=pa.array([99, 8], pa.int32()))
    with pytest.raises(GateError, match=r"label accuracy 0.5000 < --min-label-accuracy 0.9") as info:
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), truth_col="truth", min_label_accuracy=0.9))
    assert info.value.exit_code == 3
    assert json.loads((tmp_path / "o" / "_stats.json").read_text())["label_accuracy"] == 0.5
    run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o2"), truth_col="truth", min_utilization=0.5))
    with pytest.raises(GateError, match="dataset utilization 0.5000 < --min-utilization 0.6"):
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o3"), truth_col="truth", min_utilization=0.6))


def test_shipped_sample_passes_its_ci_gate(tmp_path):
    """The project's own CI check on a committed fixture with ground truth."""
    cmd = [
        sys.executable,
        "-m",
        "janus_build",
        "match",
        "--sample",
        "--out",
        str(tmp_path / "s"),
        "--min-label-accuracy",
        "0.9",
        "--min-utilization",
        "0.8",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "s" / "_stats.json").read_text())
    assert stats["label_accuracy"] >= 0.9 and stats["rows"] > 250
    strict = subprocess.run(cmd[:-4] + ["--overwrite", "--min-label-accuracy", "0.999"], capture_output=True, text=True)
    assert strict.returncode == 3 and "label accuracy" in strict.stderr


def test_yfcc_style_joined_text_columns(tmp_path):
    data = write(
        tmp_path / "yfcc.parquet",
        title=["holiday", None, None],
        description=["we saw", "", None],
        tags=[["koala", "australia"], ["lion"], None],
    )
    run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), text_cols=("title", "description", "tags")))
    assert pq.read_table(tmp_path / "o" / "00000.parquet").column("label").to_pylist() == [105, 291, -1]


def test_inputs_directories_and_globs(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        write(tmp_path / "in" / f"part-{i}.parquet", TEXT=[f"goose {i}"])
    inputs = (str(tmp_path / "in"), str(tmp_path / "in" / "part-1*"))
    stats = run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "o"), pack_rows=0))
    assert stats["rows"] == 3 and stats["inputs"] == 3
    assert sorted(p.name for p in (tmp_path / "o").glob("*.parquet")) == [
        "00000.parquet",
        "00001.parquet",
        "00002.parquet",
    ]


def test_inputs_come_back_resolved_through_links(tmp_path, monkeypatch):
    from janus_build.core import storage
    from janus_build.match.inputs import resolve_inputs

    (tmp_path / "real").mkdir()
    (tmp_path / "in").mkdir()
    write(tmp_path / "real" / "a.parquet", TEXT=["goose"])
    write(tmp_path / "in" / "b.parquet", TEXT=["goose"])
    (tmp_path / "in" / "link.parquet").symlink_to(tmp_path / "real" / "a.parquet")
    (tmp_path / "in" / "sub").symlink_to(tmp_path / "real", target_is_directory=True)  # not walked
    (tmp_path / "alias").symlink_to(tmp_path / "in", target_is_directory=True)
    real = tmp_path.resolve()
    expected = [str(real / "in" / "b.parquet"), str(real / "real" / "a.parquet")]
    assert resolve_inputs((str(tmp_path / "alias"),)) == expected
    assert resolve_inputs((str(tmp_path / "alias" / "*.parquet"),)) == expected
    assert resolve_inputs((str(tmp_path / "alias" / "link.parquet"),)) == [expected[1]]
    monkeypatch.chdir(tmp_path / "alias")  # a relative location is still fingerprinted by its resolved path
    assert storage.fingerprint("b.parquet")["path"] == expected[0]


def test_workers_give_the_same_output(tmp_path, laion_sample):
    source = pq.read_table(laion_sample)
    sizes = (100, 400, 150, 350)  # unequal: the workers take them largest first, not in input order
    for i, (start, size) in enumerate(zip((0, 100, 500, 650), sizes)):
        pq.write_table(source.slice(start, size), tmp_path / f"s{i}.parquet")
    inputs = (str(tmp_path / "s*.parquet"),)
    one = run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "one"), labels="in1k", pack_rows=0))
    two = run_match(MatchConfig(inputs=inputs, out=str(tmp_path / "two"), labels="in1k", pack_rows=0, workers=2))
    assert one["per_class"] == two["per_class"] and one["rows"] == two["rows"] == sum(sizes)
    for i, size in enumerate(sizes):
        shard = pq.read_table(tmp_path / "two" / f"0000{i}.parquet")
        assert shard.num_rows == size and shard.equals(pq.read_table(tmp_path / "one" / f"0000{i}.parquet"))


@pytest.mark.parametrize("engine_name", ["local", "spark"])
def test_parallel_engines_take_the_largest_shards_first(tmp_path, monkeypatch, engine_name):
    """A big file handed out last would leave one worker alone on it at the end."""
    from janus_build.match import engine, spark

    for i, rows in enumerate((3, 9, 1, 9, 5)):
        write(tmp_path / f"s{i}.parquet", TEXT=[f"goose {j}" for j in range(rows)])
    handed = []

    def record(todo, *args):
        handed.extend(task.index for task in todo)
        return []

    monkeypatch.setattr(engine, "run_local", record)
    monkeypatch.setattr(spark, "run_spark", record)
    config = MatchConfig(inputs=(str(tmp_path / "s*.parquet"),), out=str(tmp_path / "o"), pack_rows=0, workers=2)
    run_match(replace(config, engine=engine_name))
    assert handed == [1, 3, 4, 0, 2]  # by rows, input order among equals
    handed.clear()
    run_match(replace(config, workers=1, overwrite=True))
    assert handed == [0, 1, 2, 3, 4]  # one process: input order


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_THP_DISABLE) is Linux's")
def test_workers_run_without_transparent_huge_pages(tmp_path, laion_sample, monkeypatch, thp_status):
    """Two fresh workers faulting in 2 MiB pages at once cost ~0.1 s of kernel time each (benchmarks)."""
    if thp_status() is None:
        pytest.skip("this kernel's /proc/self/status has no THP_enabled line")
    from janus_build.match import engine

    seen = tmp_path / "seen"
    seen.mkdir()

    def recording(task, *args, _run=engine.run_shard):  # forked workers inherit the patched module
        (seen / str(os.getpid())).write_text(thp_status() or "")
        return _run(task, *args)

    monkeypatch.setattr(engine, "run_shard", recording)
    source = pq.read_table(laion_sample)
    for i in range(4):
        pq.write_table(source.slice(i * 250, 250), tmp_path / f"s{i}.parquet")
    run_match(MatchConfig(inputs=(str(tmp_path / "s*.parquet"),), out=str(tmp_path / "o"), pack_rows=0, workers=2))
    workers = {int(path.name): path.read_text() for path in seen.iterdir()}
    assert workers and os.getpid() not in workers
    assert set(workers.values()) == {"0"}
    assert thp_status() == "1"  # the caller's process keeps its setting


def test_forked_workers_inherit_the_built_matcher(tmp_path, monkeypatch):
    from janus_build.match import engine, native, shard

    if native.load() is None:
        pytest.skip("no compiled matcher here: there are no tables to build ahead")
    seen = tmp_path / "seen"
    seen.mkdir()

    def recording(task, *args, _run=engine.run_shard):
        built = "native_table" in vars(engine.build_matcher(task.config).table)
        (seen / f"{os.getpid()}-{task.index}").write_text(str(built))
        return _run(task, *args)

    monkeypatch.setattr(engine, "run_shard", recording)
    monkeypatch.setattr(shard, "_MATCHERS", {})  # none built yet, as in a fresh process
    for i in range(3):
        write(tmp_path / f"s{i}.parquet", TEXT=["a goldfish", "a goose"])
    run_match(MatchConfig(inputs=(str(tmp_path / "s*.parquet"),), out=str(tmp_path / "o"), pack_rows=0, workers=2))
    assert len(list(seen.iterdir())) == 3 and {path.read_text() for path in seen.iterdir()} == {"True"}


# --- bad input -----------------------------------------------------------------------------
def test_missing_caption_column_names_file_column_and_present(tmp_path):
    data = write(tmp_path / "x.parquet", url=["u"], alt=["a goose"])
    with pytest.raises(SchemaError, match=r"x.parquet: caption column 'TEXT' not found .*columns present: url, alt"):
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o")))
    with pytest.raises(SchemaError, match=r"'title' not found \(--text-col\)"):
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), text_cols=("title",)))
    with pytest.raises(SchemaError, match="--truth-col 'gt' not found"):
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), text_cols=("alt",), truth_col="gt"))
    assert not (tmp_path / "o").exists()  # validated before anything was written


def test_corrupt_parquet_named_and_skippable(tmp_path):
    good = write(tmp_path / "a.parquet", TEXT=["a goose"])
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError, match="b.parquet: not a readable parquet file"):
        run_match(MatchConfig(inputs=(str(good), str(bad)), out=str(tmp_path / "o")))
    stats = run_match(MatchConfig(inputs=(str(good), str(bad)), out=str(tmp_path / "o2"), skip_bad_inputs=True))
    assert stats["rows"] == 1 and [b["path"] for b in stats["skipped_inputs"]] == [str(bad.resolve())]


def test_odd_captions_are_counted_not_crashes(tmp_path):
    huge = "goose " * 200_000  # 1.2 MB
    wide = "é" * 60_000 + " lion"  # 120,011 bytes but 60,005 characters: not too long
    texts = [None, "", "   ", huge, "Ein Löwe im Zoo", "лев", "a lion", wide, "\t\n\x0b"]
    data = write(tmp_path / "odd.parquet", TEXT=texts)
    stats = run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o")))
    assert stats["rows"] == 9 and stats["labelled"] == 2
    assert stats["unlabelled_reasons"] == {"empty": 4, "non_text": 0, "too_long": 1}
    numbers = write(tmp_path / "num.parquet", TEXT=pa.array([1, 2, None], pa.int64()))
    stats = run_match(MatchConfig(inputs=(str(numbers),), out=str(tmp_path / "o2")))
    assert stats["labelled"] == 0 and stats["unlabelled_reasons"]["non_text"] == 2
    binary = write(tmp_path / "bin.parquet", TEXT=pa.array([b"a goose", b"\xff\xfe broken", None], pa.binary()))
    stats = run_match(MatchConfig(inputs=(str(binary),), out=str(tmp_path / "o3")))
    assert stats["labelled"] == 1


def test_no_inputs_and_bad_options(tmp_path):
    with pytest.raises(InputError, match="no such file, directory or glob"):
        run_match(MatchConfig(inputs=(str(tmp_path / "nothing*.parquet"),), out=str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no .parquet files"):
        run_match(MatchConfig(inputs=(str(tmp_path / "empty"),), out=str(tmp_path / "o")))
    with pytest.raises(ConfigError, match="--strategy: 'best' is not one of sc, strict, mc"):
        run_match(MatchConfig(inputs=("x",), out="o", strategy="best"))
    with pytest.raises(ConfigError, match="--min-label-accuracy needs --truth-col"):
        run_match(MatchConfig(inputs=("x",), out="o", min_label_accuracy=0.5))


def test_output_directory_with_other_content_refused(tmp_path):
    data = write(tmp_path / "a.parquet", TEXT=["a goose"])
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o")))
    with pytest.raises(OutputError, match="not empty"):  # --overwrite never deletes a foreign directory's files
        run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), overwrite=True))
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_cli_user_errors_are_one_line(tmp_path):
    data = write(tmp_path / "x.parquet", url=["u"])
    done = subprocess.run(
        [sys.executable, "-m", "janus_build", "match", str(data), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "caption column 'TEXT' not found" in done.stderr


# --- resume --------------------------------------------------------------------------------
def test_resume_skips_done_shards(tmp_path):
    for i in range(3):
        write(tmp_path / f"p{i}.parquet", TEXT=[f"goose {i}", "lion"])
    config = MatchConfig(inputs=(str(tmp_path / "p*.parquet"),), out=str(tmp_path / "o"), pack_rows=0)
    run_match(config)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("0*.parquet")}
    (tmp_path / "o" / "_stats" / "00001.json").unlink()  # as if killed while writing shard 1
    stats = run_match(config)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("0*.parquet")}
    assert after["00000.parquet"] == before["00000.parquet"] and after["00002.parquet"] == before["00002.parquet"]
    assert after["00001.parquet"] != before["00001.parquet"]
    assert stats["rows"] == 6
    with pytest.raises(OutputError, match="strategy: was 'sc', now 'mc'"):
        run_match(MatchConfig(inputs=config.inputs, out=config.out, pack_rows=0, strategy="mc"))


def test_killed_run_resumes_to_the_same_result(tmp_path, laion_sample):
    source = pq.read_table(laion_sample)
    big = pa.concat_tables([source] * 30)  # 30k rows per shard, so the kill lands mid-run
    for i in range(6):
        pq.write_table(big, tmp_path / f"part{i}.parquet")
    cmd = [
        sys.executable,
        "-m",
        "janus_build",
        "match",
        str(tmp_path / "part*.parquet"),
        "--out",
        str(tmp_path / "o"),
        "--labels",
        "in1k",
        "--pack-rows",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not list((tmp_path / "o").glob("_stats/*.json")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sorted(p.name for p in (tmp_path / "o").glob("_stats/*.json"))
    assert 1 <= len(done_before) < 6, done_before
    # a shard killed mid-write leaves only a hidden temporary file, never a half NNNNN.parquet
    # (at most one complete shard may be waiting for its marker)
    assert len(list((tmp_path / "o").glob("0*.parquet"))) - len(done_before) in (0, 1)
    subprocess.run(cmd, check=True, capture_output=True)
    clean = tmp_path / "clean"
    subprocess.run(cmd[:-6] + ["--out", str(clean), *cmd[-4:]], check=True, capture_output=True)
    for i in range(6):
        assert pq.read_table(tmp_path / "o" / f"0000{i}.parquet").equals(pq.read_table(clean / f"0000{i}.parquet"))
    resumed = json.loads((tmp_path / "o" / "_stats.json").read_text())
    assert resumed["rows"] == 180_000 == json.loads((clean / "_stats.json").read_text())["rows"]


def test_arrow_token_lookup_equals_the_python_lemmatiser(in1k):
    """The candidate-set lookup must give every token the id the lemmatiser gives it."""
    import random

    table = in1k.table
    tokens = table.candidate_tokens.to_pylist()
    rng = random.Random(0)
    tokens += [w + suffix for w in list(table.word_ids)[:300] for suffix in ("s", "es", "ses", "ss", "ies", "men")]
    tokens += ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 9))) for _ in range(3000)]
    tokens += ["shortses", "geese", "mice", "oxen", "sunglasses", "trunks", "lionesses", ""]
    expected = [table.word_id(t) for t in tokens]
    assert table.token_ids(pa.array(tokens, pa.string())).tolist() == expected
    assert sum(1 for e in expected if e) > 1000


def test_reasons_with_several_text_columns(tmp_path):
    data = write(
        tmp_path / "mix.parquet",
        title=["a goose", None, None, "x" * 200_001, None],
        views=pa.array([None, 5, None, None, 7], pa.int64()),
        tags=["", "", None, "lion", "  "],
    )
    stats = run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), text_cols=("title", "views", "tags")))
    # row 0 labelled; row 1 only a number; row 2 nothing; row 3 too long; row 4 a number and blanks
    assert stats["labelled"] == 1
    assert stats["unlabelled_reasons"] == {"empty": 1, "non_text": 2, "too_long": 1}


def test_mc_accuracy_is_truth_among_labels_with_label_precision(tmp_path):
    data = write(
        tmp_path / "cap.parquet",
        caption=["a goose and a lion", "a goose", "a koala", "nothing"],
        truth=pa.array([291, 99, 8, 291], pa.int32()),
    )
    mc = run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "mc"), truth_col="truth", strategy="mc"))
    assert mc["labelled"] == 3 and mc["correct"] == 2  # lion is among row 0's labels
    assert mc["label_accuracy"] == pytest.approx(2 / 3, abs=1e-6) and mc["dataset_utilization"] == 0.5
    assert mc["per_label"] == {"99": 2, "105": 1, "291": 1}
    assert mc["label_precision"] == 0.5  # 2 correct labels of 4 emitted
    assert mc["per_class_accuracy"] == {"99": 0.5, "105": 0.0, "291": 1.0}  # per-label precision
    sc = run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "sc"), truth_col="truth"))
    assert sc["correct"] == 1 and "label_precision" not in sc and sc["label_accuracy"] != mc["label_accuracy"]


def test_html_lookalikes_urls_and_unicode_in_the_stage(tmp_path):
    data = write(
        tmp_path / "cap.parquet",
        TEXT=["I <3 my goldfish > my cat", "photo:https://x.com/a,lion", "\uff2c\uff49\uff4f\uff4e", "koala\u02bcs"],
    )
    run_match(MatchConfig(inputs=(str(data),), out=str(tmp_path / "o"), labels="in1k"))
    assert pq.read_table(tmp_path / "o").column("label").to_pylist() == [1, 291, 291, 105]


def test_in_memory_api_takes_any_string_layout(in1k):
    assert in1k.match(pa.array([], pa.string())).labels.to_pylist() == []
    assert in1k.match(pa.array([None, None], pa.string())).labels.to_pylist() == [[], []]
    assert in1k.match(pa.array(["a lion", None, "Löwe lion"], pa.large_string())).labels.to_pylist() == [
        [291],
        [],
        [291],
    ]
    assert in1k.match(pa.array(["é", "a goose"], pa.string()).slice(1)).labels.to_pylist() == [[99]]
