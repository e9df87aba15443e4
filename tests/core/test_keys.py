"""The key rule: webdataset's split, and path keys that are unique by construction."""

from __future__ import annotations

import itertools

import pytest

from janus_build.core.keys import check_key, dedup_id, path_key, row_key, split_member
from janus_build.errors import InputError


def test_split_member_follows_webdataset():
    assert split_member("flickr-1.jpg") == ("flickr-1", "jpg")
    assert split_member("a.seg.PNG") == ("a", "seg.png")
    assert split_member("dir/sub/k-2.json") == ("k-2", "json")


def test_path_keys_are_injective_on_tricky_paths():
    paths = [
        "lion/lion_000.jpg",
        "lion_lion_000.jpg",
        "lion__lion_000.jpg",
        "lion-lion_000.jpg",
        "a/b-c.jpg",
        "a-b/c.jpg",
        "a_b/c.jpg",
        "a__b/c.jpg",
        "consommé.jpg",
        "consomme\u0301.jpg",
        "x y.jpg",
        "x_x20y.jpg",
        "2B-en/part-00000.parquet",
        "2B-multi/part-00000.parquet",
        "a.b/c.jpg",
        "a_b.c.jpg",
    ]
    keys = [path_key("in", p) for p in paths]
    assert len(set(keys)) == len(paths)
    for key in keys:
        check_key(key, "test")
    assert path_key("", "lion/lion_000.jpg") == "lion__lion_u000"


def test_row_keys_never_collide_across_files():
    files = ["a", "a-1", "a-1-2", "b"]
    keys = [row_key(f, r) for f, r in itertools.product(files, range(30))]
    assert len(set(keys)) == len(keys)


def test_bad_keys_and_namespaced_ids():
    for bad in ("", "a.b", "a/b", "a b"):
        with pytest.raises(InputError, match="not usable"):
            check_key(bad, "shard x")
    assert dedup_id("imagenet", "lion/1.jpg") != dedup_id("custom", "lion/1.jpg")
