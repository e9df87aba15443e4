"""The embedding pass: its pairs join the hash pairs; the open_clip path with a tiny random model."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from janus_build.core.shards import ImageShardWriter
from janus_build.dedup import DedupConfig, EvalSet, run_dedup
from janus_build.dedup.embed import OpenClipEmbedder, load_embedder, similar_pairs
from janus_build.dedup.testset import TRANSFORMS, jpeg_bytes, textured_image
from janus_build.errors import ConfigError, MissingResourceError


class ThumbnailEmbedder:
    """A deterministic stand-in for CLIP: the centred 8x8 grey thumbnail, L2-normalised."""

    device = "cpu"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, images):
        self.calls += len(images)
        rows = np.stack([np.asarray(im.convert("L").resize((8, 8)), np.float32).ravel() for im in images])
        rows -= rows.mean(axis=1, keepdims=True)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture()
def stage(tmp_path):
    (tmp_path / "eval" / "n0").mkdir(parents=True)
    for n in range(4):
        textured_image(300 + n, 160).save(tmp_path / "eval" / "n0" / f"{n}.JPEG", quality=92)
    rng = np.random.default_rng(0)
    with ImageShardWriter(tmp_path / "train", "00000") as writer:
        writer.write("copy", jpeg_bytes(TRANSFORMS["jpeg_q20"](textured_image(301, 160), rng)), {})
        for n in range(6):
            writer.write(f"other-{n}", jpeg_bytes(textured_image(900 + n, 160)), {})
    return tmp_path


def test_embedding_pairs_are_added_to_the_hash_pairs(stage):
    embedder = ThumbnailEmbedder()
    config = DedupConfig(
        stages=(stage / "train",),
        eval_sets=(EvalSet("val", stage / "eval"),),
        out=stage / "out",
        max_phash=0,  # the hash pass finds only identical hashes here, so the pair comes from the embeddings
        max_dhash=0,
        clip_model="stand-in",
        min_clip_similarity=0.9,
    )
    summary = run_dedup(config, embedder=embedder)
    pairs = pq.read_table(stage / "out" / "contaminated.parquet").to_pylist()
    assert [(p["key"], p["eval_file"], p["eval_variant"]) for p in pairs] == [("copy", "n0/1.JPEG", "clip")]
    assert pairs[0]["phash_distance"] is None and pairs[0]["clip_similarity"] >= 0.9
    assert summary["contaminated"] == 1 and summary["eval_sets"]["val"]["clip_only_samples"] == 1
    assert summary["stages"][str((stage / "train").resolve())]["contaminated"] == 1
    assert pq.read_table(stage / "out" / "exclude_keys.parquet")["key"].to_pylist() == ["copy"]
    embedded = embedder.calls
    run_dedup(config, embedder=embedder)  # resumed: nothing embedded again
    assert embedder.calls == embedded


def test_a_pair_found_by_both_passes_carries_both_figures(stage):
    config = DedupConfig(
        stages=(stage / "train",), eval_sets=(EvalSet("val", stage / "eval"),), out=stage / "o", clip_model="x"
    )
    run_dedup(config, embedder=ThumbnailEmbedder())
    (pair,) = pq.read_table(stage / "o" / "contaminated.parquet").to_pylist()
    assert pair["eval_variant"] == "full" and pair["phash_distance"] is not None and pair["clip_similarity"] > 0.95


def test_similar_pairs_keeps_the_best_references_above_the_threshold():
    refs = np.eye(4, dtype=np.float32)
    queries = np.asarray([[1, 0, 0, 0], [0, 0.6, 0.8, 0], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    q, r, s = similar_pairs(queries, refs, 0.75)
    assert list(zip(q.tolist(), r.tolist())) == [(0, 0), (1, 2)]
    assert np.allclose(s, [1.0, 0.8])


def test_open_clip_embedder_with_a_tiny_random_model():
    import open_clip

    from janus_build.train.models import _tiny_clip

    embedder = OpenClipEmbedder(_tiny_clip(64), open_clip.image_transform(64, is_train=False), "cpu", batch_size=2)
    rows = embedder.embed([textured_image(n, 80) for n in range(3)])
    assert rows.shape == (3, 32) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    again = embedder.embed([textured_image(0, 80)])
    assert np.allclose(again[0], rows[0], atol=1e-5)


def test_unknown_model_and_missing_weights_are_one_line_errors(monkeypatch):
    with pytest.raises(ConfigError, match="--clip-model 'no-such-model'"):
        load_embedder("no-such-model", "openai", "cpu", 8)
    import open_clip

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", offline)
    with pytest.raises(MissingResourceError, match="cannot load the weights"):
        load_embedder("ViT-B-32", "openai", "cpu", 8)
    with pytest.raises(ConfigError, match="--min-clip-similarity"):
        DedupConfig(stages=("a",), eval_sets=(EvalSet("v", "b"),), out="c", min_clip_similarity=1.5)
