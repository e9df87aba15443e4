"""The tagging queue: loading, leases, decisions, undo, crash safety, overlap, stats, export, audit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from tag_fixtures import key, known_decision, make_match_output, make_stage

from janus_build import schemas
from janus_build.errors import ConfigError, InputError, SchemaError
from janus_build.tag import Decision, TagQueue, compute_stats, export_tags, open_queue, record_decisions
from janus_build.tag.audit import AuditConfig, build_audit_queue
from janus_build.tag.db import default_db_path
from janus_build.tag.stats import cohen_kappa, wilson_interval


@pytest.fixture()
def stage(tmp_path):
    return make_stage(tmp_path / "fetch", {1: 12, 291: 8})


def test_queue_loads_successful_images_per_class_and_grows_with_new_shards(stage):
    with open_queue(stage, overlap=0.0) as queue:
        assert queue.classes() == [1, 291]
        assert queue.progress(1)["items"] == 12 and queue.progress(291)["items"] == 8  # failed rows left out
        assert queue.path == default_db_path(stage)
        queue.decide(key(1, 0), "in", "alice")
    make_stage(stage / "more", {1: 3}, shards=1, fetch_layout=False, failed=0)
    (stage / "more" / "00000.tar").rename(stage / "images" / "00005.tar")
    (stage / "more" / "00000.parquet").rename(stage / "images" / "00005.parquet")
    (stage / "more" / "_stats" / "00000.json").rename(stage / "images" / "_stats" / "00005.json")
    with open_queue(stage) as queue:
        assert queue.progress(1)["items"] == 12  # duplicate keys are not queued twice
        assert queue.decisions()[0][:4] == (key(1, 0), 1, "in", "alice")
        assert "00005" in queue.loaded_shards()


def test_image_stage_directory_directly_and_bad_inputs(tmp_path):
    plain = make_stage(tmp_path / "plain", {3: 2}, shards=1, fetch_layout=False)
    with open_queue(plain) as queue:
        assert queue.classes() == [3]
    with pytest.raises(SchemaError, match="class_id"):
        open_queue(plain, tmp_path / "other.sqlite", class_col="label")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no finished image shards"):
        open_queue(tmp_path / "empty")
    with pytest.raises(InputError, match="no such directory"):
        open_queue(tmp_path / "missing")
    with pytest.raises(ConfigError, match="--overlap"):
        TagQueue(tmp_path / "q.sqlite", overlap=1.5)


def test_leases_never_hand_one_item_to_two_clients(stage):
    with open_queue(stage, overlap=0.0, lease_seconds=60) as queue:
        a = [i.key for i in queue.next_items(1, "tab-a", "alice", 5)]
        b = [i.key for i in queue.next_items(1, "tab-b", "alice", 5)]
        assert len(a) == 5 and len(b) == 5 and not set(a) & set(b)
        # the holder gets its own items back first (a reloaded tab resumes where it was)
        assert [i.key for i in queue.next_items(1, "tab-a", "alice", 3)] == a[:3]
        c = [i.key for i in queue.next_items(1, "tab-c", "bob", 10)]
        assert c == [key(1, j) for j in range(10, 12)]  # only the two unleased items remain


def test_concurrent_clients_in_threads_get_disjoint_items(stage):
    with open_queue(stage, overlap=0.0) as queue:
        got: dict[str, list[str]] = {}

        def work(client: str) -> None:
            keys = []
            for _ in range(3):
                for item in queue.next_items(291, client, client, 2):
                    if item.key not in keys:
                        keys.append(item.key)
                        queue.decide(item.key, "in", client, client)
            got[client] = keys

        threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        everything = [k for keys in got.values() for k in keys]
        assert len(everything) == len(set(everything)) == 8
        assert queue.progress(291)["remaining"] == 0


def test_expired_lease_is_handed_on_and_both_decisions_survive(tmp_path, stage):
    with open_queue(stage, overlap=0.0, lease_seconds=0.05) as queue:
        first = queue.next_items(291, "tab-a", "alice", 1)[0].key
        time.sleep(0.1)
        assert queue.next_items(291, "tab-b", "bob", 1)[0].key == first
        queue.decide(first, "in", "alice", "tab-a")
        queue.decide(first, "out", "bob", "tab-b")
        assert sorted(r[3] for r in queue.decisions()) == ["alice", "bob"]


def test_decide_edit_undo_and_grid_batches(stage):
    with open_queue(stage, overlap=0.0) as queue:
        items = queue.next_items(1, "tab", "alice", 4)
        queue.decide(items[0].key, "in", "alice", "tab")
        assert queue.decide(items[0].key, "out", "alice", "tab")["action"] == "edit"
        queue.decide_many([Decision(i.key, "in") for i in items[1:]], "alice", "tab")
        assert queue.progress(1)["done"] == 4
        undone = queue.undo("tab", "alice")  # the whole grid page comes back
        assert [i.key for i in undone] == [i.key for i in items[1:]]
        assert queue.progress(1)["done"] == 1
        assert [i.key for i in queue.next_items(1, "tab", "alice", 3)] == [i.key for i in items[1:]]
        assert [i.key for i in queue.undo("tab", "alice")] == [items[0].key]  # the edit: back to "in"
        assert queue.decisions()[0][2] == "in"
        assert queue.undo("tab", "alice")[0].key == items[0].key  # the first decision: removed
        assert queue.decisions() == [] and queue.undo("tab", "alice") == []
        assert queue.undo("other-tab", "alice") == []


def test_bad_decisions_record_nothing(stage):
    with open_queue(stage) as queue:
        with pytest.raises(InputError, match="not in the queue"):
            queue.decide_many([Decision(key(1, 0), "in"), Decision("flickr-nope", "in")], "alice")
        with pytest.raises(InputError, match="decision 'maybe'"):
            queue.decide(key(1, 0), "maybe", "alice")
        with pytest.raises(InputError, match="annotator"):
            queue.decide(key(1, 0), "in", "  ")
        assert queue.decisions() == []


def test_overlap_items_need_two_annotators_and_give_kappa(stage):
    with open_queue(stage, overlap=1.0) as queue:
        keys = [key(291, j) for j in range(8)]
        alice = ["in", "in", "out", "out", "in", "in", "out", "in"]
        bob = ["in", "out", "out", "out", "in", "in", "in", "in"]
        record_decisions(queue, zip(keys, alice), "alice")
        assert queue.progress(291)["done"] == 0
        # "remaining" is what is left for this annotator; judged overlap items wait for a second one
        mine = queue.progress(291, "alice")
        assert (mine["items"], mine["done"], mine["remaining"], mine["awaiting_second"]) == (8, 0, 0, 8)
        theirs = queue.progress(291, "bob")
        assert (theirs["remaining"], theirs["awaiting_second"]) == (8, 0)
        anyone = queue.progress(291)
        assert (anyone["remaining"], anyone["awaiting_second"]) == (0, 8)
        assert compute_stats(queue, stage)["classes"][1]["remaining"] == 0
        assert compute_stats(queue, stage)["classes"][1]["awaiting_second"] == 8
        assert queue.confirmed_in_keys(291) == []  # one annotator's "in" confirms nothing
        assert queue.next_items(291, "tab-a", "alice", 8) == []  # alice has judged them all
        assert len(queue.next_items(291, "tab-b", "bob", 8)) == 8
        record_decisions(queue, zip(keys, bob), "bob")
        assert queue.progress(291)["done"] == 8
        assert queue.progress(291, "alice")["awaiting_second"] == 0
        assert queue.confirmed_in_keys(291) == [keys[j] for j in (0, 4, 5, 7)]  # both said in
        result = compute_stats(queue, stage)
    pairs = list(zip(alice, bob))
    assert result["agreement"]["items"] == 8
    assert result["agreement"]["cohen_kappa"] == pytest.approx(cohen_kappa(pairs), abs=1e-4)
    # by the balance rule, a key with any "out" is out: keys 0, 4, 5 and 7 are good
    row = next(r for r in result["classes"] if r["class_id"] == 291)
    assert (row["good"], row["total"], row["pct_good"]) == (4, 8, 50.0)


def test_cohen_kappa_and_wilson_known_values():
    assert cohen_kappa([("in", "in"), ("in", "out"), ("out", "out"), ("out", "out")]) == pytest.approx(0.5)
    assert cohen_kappa([("in", "in")] * 3) == 1.0
    assert cohen_kappa([]) is None
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 20)[0] == 0.0


def test_table8_stats_and_export_match_known_decisions(stage, tmp_path):
    answers = {key(c, j): known_decision(key(c, j)) for c, n in ((1, 12), (291, 8)) for j in range(n)}
    with open_queue(stage, overlap=0.0) as queue:
        record_decisions(queue, answers, "alice")
        result = compute_stats(queue, stage)
        summary = export_tags(queue, tmp_path / "tags.parquet")
    for c, n in ((1, 12), (291, 8)):
        row = next(r for r in result["classes"] if r["class_id"] == c)
        good = sum(1 for j in range(n) if answers[key(c, j)] == "in")
        assert (row["good"], row["total"], row["available"]) == (good, n, 10 * n + 7)
        assert row["pct_good"] == round(100 * good / n, 2)
    table = pq.read_table(tmp_path / "tags.parquet")
    assert (
        table.schema.names[:5] == schemas.TAGS.names
        and table.schema.field("time").type == schemas.TAGS.field("time").type
    )
    assert dict(zip(table.column("key").to_pylist(), table.column("decision").to_pylist())) == answers
    assert set(table.column("annotator").to_pylist()) == {"alice"} and summary["rows"] == 20


def test_a_killed_process_loses_no_committed_decision(stage):
    open_queue(stage).close()
    code = (
        "import os, signal, sys\n"
        "from janus_build.tag import open_queue\n"
        f"q = open_queue({str(stage)!r})\n"
        "for j in range(12):\n"
        "    q.decide(f'flickr-1x{j}', 'out' if j % 3 else 'in', 'alice', 'tab')\n"
        "print('committed', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == -9 and "committed" in out.stdout
    with open_queue(stage) as queue:
        decided = {r[0]: r[2] for r in queue.decisions()}
        assert decided == {f"flickr-1x{j}": ("out" if j % 3 else "in") for j in range(12)}
        assert queue.progress(1)["decisions"] == 12


def test_audit_sample_and_precision(tmp_path):
    match = make_match_output(tmp_path / "match", {7: 10, 9: 4})
    queue = build_audit_queue(AuditConfig(match_dir=match, per_class=5, overlap=0.0))
    try:
        assert queue.progress(7)["items"] == 5 and queue.progress(9)["items"] == 4
        sampled = [i.key for i in queue.next_items(7, "t", "judge", 10)]
        assert all(k.startswith("laion-7-") for k in sampled)
        item = queue.item(sampled[0])
        assert item.title.startswith("a photo of term7") and item.url.startswith("https://img.example.org/7/")
        record_decisions(queue, {k: ("in" if n < 4 else "out") for n, k in enumerate(sampled)}, "judge")
        record_decisions(queue, {i.key: "in" for i in queue.next_items(9, "t", "judge", 10)}, "judge")
        result = compute_stats(queue, match)
    finally:
        queue.close()
    audit = result["audit"]
    assert (audit["correct"], audit["judged"]) == (8, 9)
    low, high = wilson_interval(8, 9)
    assert audit["precision_ci95"] == [round(low, 4), round(high, 4)]
    # stratified by labelled counts 10 and 4: (10 * 0.8 + 4 * 1.0) / 14
    assert audit["stratified"]["precision"] == pytest.approx(12 / 14, abs=1e-4)
    again = build_audit_queue(AuditConfig(match_dir=match, per_class=5))
    assert again.progress(7)["items"] == 5 and all(again.item(k) for k in sampled)  # same sample on reopen
    again.close()
    with pytest.raises(ConfigError, match="other options"):
        build_audit_queue(AuditConfig(match_dir=match, per_class=6))


def test_progress_counters_stay_equal_to_a_recount(stage):
    import random

    from janus_build.tag.db import _recount

    rng = random.Random(0)
    with open_queue(stage, overlap=0.3) as queue:
        for step in range(150):
            who = rng.choice(["a", "b"])
            class_id = rng.choice([1, 291])
            r = rng.random()
            if r < 0.6:
                items = queue.next_items(class_id, "t" + who, who, 3)
                picks = [Decision(i.key, rng.choice(["in", "out", "unsure"])) for i in items[: rng.randint(1, 3)]]
                queue.decide_many(picks, who, "t" + who)
            elif r < 0.8:
                queue.undo("t" + who, who)
            elif recent := queue.recent(who, class_id, 5):
                queue.decide(rng.choice(recent)["key"], rng.choice(["in", "out", "unsure"]), who, "t" + who)
            if step % 25 == 24:
                kept = [queue.progress(c) for c in (1, 291)]
                with queue._write() as cur:
                    _recount(cur)
                assert kept == [queue.progress(c) for c in (1, 291)], step
                assert kept[0]["done"] + kept[1]["done"] > 0


def test_available_counts_from_either_report_layout(tmp_path):
    from janus_build.tag.stats import read_available

    (tmp_path / "report.json").write_text('{"per_class": {"7": {"available": 12}}, "totals": {}}')
    assert read_available(tmp_path) == {7: 12}
    (tmp_path / "report.json").write_text('{"classes": [{"class_id": 3, "available": 5}, {"class_id": "x"}]}')
    assert read_available(tmp_path) == {3: 5}
    (tmp_path / "report.json").write_text("not json")
    assert read_available(tmp_path) == {} and read_available(tmp_path / "missing") == {}


def test_class_names_come_from_the_fetch_report_before_imagenet(tmp_path):
    from janus_build.tag.stats import class_names

    (tmp_path / "report.json").write_text(
        '{"classes": {"0": {"name": "corvid", "available": 3}, "291": {"available": 1}}}'
    )
    assert class_names([0, 291, 5000], tmp_path) == {0: "corvid", 291: "lion", 5000: ""}
    assert class_names([0, 291]) == {0: "tench", 291: "lion"}
