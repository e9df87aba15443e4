"""The Python daemon janus gives local Spark executors imports PySpark from its installed package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from janus_build.match.spark_daemon import installed_copies


def _package(site: Path, name: str, version_py: str = "") -> Path:
    package = site / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if version_py:
        (package / "version.py").write_text(version_py)
    return package


def _zips(lib: Path, *names: str) -> list[str]:
    lib.mkdir(parents=True, exist_ok=True)
    for name in names:
        (lib / name).write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    return [str(lib / name) for name in names]


def test_the_zips_of_the_installed_pyspark_are_dropped(tmp_path):
    site = tmp_path / "site-packages"
    pyspark = _package(site, "pyspark")
    _package(site, "py4j", "__version__ = '0.10.9.9'\n")
    zips = _zips(pyspark / "python" / "lib", "pyspark.zip", "py4j-0.10.9.9-src.zip")
    path = [*zips, "/srv/app", str(site)]  # Spark's order: its zips first
    assert installed_copies(path) == zips


def test_a_py4j_of_another_version_keeps_its_zip(tmp_path):
    site = tmp_path / "site-packages"
    pyspark = _package(site, "pyspark")
    _package(site, "py4j", '__version__ = "0.10.9.7"\n')
    zips = _zips(pyspark / "python" / "lib", "pyspark.zip", "py4j-0.10.9.9-src.zip")
    assert installed_copies([*zips, str(site)]) == zips[:1]


def test_a_zip_of_another_spark_home_stays(tmp_path):
    """A full Spark distribution's zip, beside a pip PySpark that may be another version: nothing is dropped."""
    site = tmp_path / "site-packages"
    _package(site, "pyspark")
    _package(site, "py4j", "__version__ = '0.10.9.9'\n")
    zips = _zips(tmp_path / "spark-4.0.0" / "python" / "lib", "pyspark.zip", "py4j-0.10.9.9-src.zip")
    assert installed_copies([*zips, str(site)]) == []
    assert installed_copies(zips) == []  # no installed PySpark at all


def test_a_pyspark_earlier_on_the_path_than_the_zips_owner_keeps_them(tmp_path):
    other, site = tmp_path / "other", tmp_path / "site-packages"
    _package(other, "pyspark")
    pyspark = _package(site, "pyspark")
    zips = _zips(pyspark / "python" / "lib", "pyspark.zip")
    assert installed_copies([*zips, str(other), str(site)]) == []


@pytest.mark.spark
def test_spark_workers_import_the_installed_pyspark_without_huge_pages(tmp_path, thp_status):
    """The daemon compiled PySpark from its zip on every start (~0.45 s a first task); its workers
    faulted their heaps in as 2 MiB pages (~0.15 s of a 1M-caption task)."""
    pytest.importorskip("pyspark")
    from janus_build.match import MatchConfig
    from janus_build.match.spark import spark_context

    context = spark_context(MatchConfig(inputs=("unused",), out="unused", engine="spark"))
    if context.getConf().get("spark.python.daemon.module", "") != "janus_build.match.spark_daemon":
        context.stop()  # an earlier test's context, made without janus's defaults
        context = spark_context(MatchConfig(inputs=("unused",), out="unused", engine="spark"))

    def where(_):  # runs on the executor: nothing from the test modules (they are not importable there)
        import os
        import sys

        import pyspark

        thp = None
        if os.path.exists("/proc/self/status"):
            with open("/proc/self/status") as handle:
                thp = next((line.split()[1] for line in handle if line.startswith("THP_enabled:")), None)
        return pyspark.__file__, [entry for entry in sys.path if entry.endswith("pyspark.zip")], thp

    [(origin, zips, thp)] = context.parallelize([0], 1).map(where).collect()
    import pyspark

    assert origin == pyspark.__file__ and Path(origin).suffix == ".py"
    assert zips == []
    assert thp == ("0" if thp_status() is not None else None)  # None: not Linux, or no such status line
    assert sys.modules["pyspark"].__file__ == origin
