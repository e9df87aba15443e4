"""Atomic writes honour the umask, leave nothing behind on failure, and killed runs' temporaries are swept."""

from __future__ import annotations

import os
import stat

import pytest

from janus_build.core.fsio import atomic_path, atomic_write_json, is_temporary, sweep_temporaries


def test_files_get_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # mkstemp gave 0600
    old = os.umask(0o002)
    try:
        atomic_write_json(tmp_path / "b.json", {"b": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o664


def test_failed_write_leaves_target_and_directory_untouched(tmp_path):
    atomic_write_json(tmp_path / "t.json", {"v": 1})
    with pytest.raises(ZeroDivisionError), atomic_path(tmp_path / "t.json") as tmp:
        tmp.write_text("half")
        1 / 0  # noqa: B018
    assert (tmp_path / "t.json").read_text().strip().endswith("}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_sweep_removes_only_temporaries_below_the_directory(tmp_path):
    (tmp_path / "images").mkdir()
    left = [tmp_path / ".00000.tar.janus-123-abcd.tmp", tmp_path / "images" / ".00001.parquet.xyz.tmp"]
    for path in left:
        path.write_text("killed mid-write")
    keep = [tmp_path / "00000.parquet", tmp_path / ".hidden", tmp_path / "notes.tmp"]
    for path in keep:
        path.write_text("x")
    assert sweep_temporaries(tmp_path) == 2
    assert not any(p.exists() for p in left) and all(p.exists() for p in keep)
    assert is_temporary(".a.janus-1-ff.tmp") and not is_temporary("a.tmp")
