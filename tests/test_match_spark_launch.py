"""The driver JVM janus launches: its class-data archive written once, then mapped, or dropped when bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark")

ROOT = Path(__file__).resolve().parent.parent

# One `janus match --engine spark` in a fresh process (each run launches its own JVM, as the CLI
# does); prints the stats and which .jsa files the driver JVM has mapped at the end.
CHILD = r"""
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from janus_build.match import MatchConfig, run_match
stats = run_match(MatchConfig(inputs=(sys.argv[1],), out=sys.argv[2], engine="spark", spark_master="local[1]",
                              overwrite=True))
from pyspark import SparkContext
jvm = getattr(SparkContext._gateway, "proc", None)
mapped = None
if jvm is not None:
    with open(f"/proc/{jvm.pid}/maps") as maps:
        mapped = sorted({line.split()[-1] for line in maps if line.rstrip().endswith(".jsa")})
print(json.dumps({"rows": stats["rows"], "labelled": stats["labelled"], "mapped": mapped}))
"""


def match_in_a_fresh_process(tmp_path: Path, source: Path) -> tuple[dict, str]:
    env = {
        **os.environ,
        "JANUS_SPARK_CDS": "1",
        "JANUS_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # where a crashing JVM would leave its hs_err file
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the JVM's memory map from /proc")
def test_archive_written_once_then_mapped_and_a_torn_one_dropped(tmp_path, laion_sample):
    cds = tmp_path / "cache" / "spark-cds"
    first, log = match_in_a_fresh_process(tmp_path, laion_sample)
    assert (first["rows"], first["mapped"]) == (1000, None)  # the recording JVM was stopped to write it
    assert "writing a class-data archive" in log and "wrote" in log
    [archive] = cds.iterdir()
    assert archive.suffix == ".jsa" and archive.stat().st_size > 10 * 2**20

    second, log = match_in_a_fresh_process(tmp_path, laion_sample)
    assert second["rows"] == 1000 and second["labelled"] == first["labelled"]
    assert str(archive) in second["mapped"]  # the JVM really mapped it
    assert "writing a class-data archive" not in log
    assert [p.name for p in cds.iterdir()] == [archive.name]

    with archive.open("r+b") as handle:  # torn: the JVM that maps it dies at start (SIGBUS)
        handle.truncate(2**20)
    third, log = match_in_a_fresh_process(tmp_path, laion_sample)
    assert third["rows"] == 1000 and third["labelled"] == first["labelled"]
    assert "did not start with" in log and str(archive) in log
    assert list(cds.iterdir()) == []  # the next run writes a new one
