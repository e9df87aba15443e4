"""``janus dedup`` on the command line: the summary line, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

from janus_build.core.shards import ImageShardWriter
from janus_build.dedup.testset import jpeg_bytes, textured_image


def _janus(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "500"}  # no wrapping: an error must be one line
    return subprocess.run(
        [sys.executable, "-m", "janus_build", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_dedup_command_reports_contamination_per_eval_set(tmp_path):
    (tmp_path / "val" / "n01").mkdir(parents=True)
    textured_image(1, 128).save(tmp_path / "val" / "n01" / "a.JPEG", quality=90)
    textured_image(2, 128).save(tmp_path / "val" / "n01" / "b.JPEG", quality=90)
    with ImageShardWriter(tmp_path / "train", "00000") as writer:
        writer.write("leak", jpeg_bytes(textured_image(1, 128).resize((64, 64)), 60), {})
        writer.write("fine", jpeg_bytes(textured_image(3, 128)), {})
    result = _janus(
        "dedup", str(tmp_path / "train"), "--eval", f"imagenet_val={tmp_path / 'val'}", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    assert "1 contaminated" in result.stdout and "imagenet_val 1" in result.stdout
    assert (tmp_path / "o" / "_contamination.json").is_file()


def test_missing_eval_folder_is_one_line_and_exit_2(tmp_path):
    with ImageShardWriter(tmp_path / "train", "00000") as writer:
        writer.write("fine", jpeg_bytes(textured_image(3, 64)), {})
    result = _janus(
        "dedup", str(tmp_path / "train"), "--eval", f"sketch={tmp_path / 'gone'}", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such directory" in lines[0] and "Traceback" not in result.stderr
