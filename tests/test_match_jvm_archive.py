"""The class-data archive of Spark's driver JVM: where it lives, when it is made, kept or dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from janus_build.match import jvm_archive
from janus_build.match.jvm_archive import JvmArchive, archive_key, cache_dir, java_major


def fake_jdk(root: Path, version: str) -> Path:
    """A JDK's layout as the archive looks at it: bin/java, release, lib/server/libjvm.so."""
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "server").mkdir(parents=True)
    java = root / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    (root / "lib" / "server" / "libjvm.so").write_bytes(b"\x7fELF")
    (root / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return java


def fake_spark_home(root: Path) -> Path:
    (root / "jars").mkdir(parents=True)
    for name in ("spark-core_2.13-4.3.0.jar", "py4j-0.10.9.9.jar"):
        (root / "jars" / name).write_bytes(b"PK")
    return root


@pytest.fixture
def jdk17(tmp_path, monkeypatch):
    java = fake_jdk(tmp_path / "jdk", "17.0.15")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("JANUS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("JANUS_SPARK_CDS", "1")
    return java


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("JANUS_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("JANUS_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "janus"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "janus"


@pytest.mark.parametrize(("version", "major"), [("17.0.15", 17), ("21", 21), ("1.8.0_292", 8), ("11.0.2", 11)])
def test_java_major_from_the_release_file(tmp_path, version, major):
    assert java_major(str(fake_jdk(tmp_path / "jdk", version))) == major


def test_no_archive_where_java_cannot_write_one(tmp_path, monkeypatch, jdk17):
    home = fake_spark_home(tmp_path / "spark")
    monkeypatch.setenv("JANUS_SPARK_CDS", "0")
    assert jvm_archive.plan(str(home), "-XX:+UseSerialGC") is None
    monkeypatch.setenv("JANUS_SPARK_CDS", "1")
    fake_jdk(tmp_path / "jdk11", "11.0.2")  # ArchiveClassesAtExit came with Java 13
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk11"))
    assert jvm_archive.plan(str(home), "-XX:+UseSerialGC") is None
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))  # no java at all
    assert jvm_archive.plan(str(home), "-XX:+UseSerialGC") is None
    assert not (tmp_path / "cache").exists()


def test_first_run_writes_then_later_runs_map(tmp_path, jdk17):
    home = fake_spark_home(tmp_path / "spark")
    first = jvm_archive.plan(str(home), "-XX:+UseSerialGC")
    assert first.writing == first.path.parent / f"{first.path.stem}.{os.getpid()}.tmp"
    assert first.path.parent == tmp_path / "cache" / "spark-cds" and not first.path.exists()
    assert f"-XX:ArchiveClassesAtExit={first.writing}" in first.java_options
    assert "-Xlog:cds*=off" in first.java_options  # the JVM logs its CDS warnings to stdout
    first.path.write_bytes(b"archive")
    later = jvm_archive.plan(str(home), "-XX:+UseSerialGC")
    assert later == JvmArchive(first.path) and later.java_options.startswith(f"-XX:SharedArchiveFile={first.path} ")


def test_the_key_follows_java_spark_and_options(tmp_path, jdk17):
    home = fake_spark_home(tmp_path / "spark")
    java = str(jdk17)
    key = archive_key(java, str(home), "-XX:+UseSerialGC")
    assert archive_key(java, str(home), "-XX:+UseSerialGC") == key
    assert archive_key(java, str(home), "-XX:+UseG1GC") != key
    (home / "jars" / "extra.jar").write_bytes(b"PK")  # a Spark upgrade changes its jars
    assert archive_key(java, str(home), "-XX:+UseSerialGC") != key
    (home / "jars" / "extra.jar").unlink()
    assert archive_key(java, str(home), "-XX:+UseSerialGC") == key
    libjvm = jdk17.parent.parent / "lib" / "server" / "libjvm.so"
    libjvm.write_bytes(b"\x7fELF, a JDK update")
    assert archive_key(java, str(home), "-XX:+UseSerialGC") != key


def test_stale_temporary_files_are_removed(tmp_path, jdk17):
    directory = tmp_path / "cache" / "spark-cds"
    directory.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = directory / f"aaaa.{dead.stdout.strip()}.tmp"  # its writer died
    running = directory / f"bbbb.{os.getpid()}.tmp"  # a concurrent run still writing
    old = directory / f"cccc.{os.getpid()}.tmp"
    for path in (gone, running, old):
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    jvm_archive.plan(str(fake_spark_home(tmp_path / "spark")), "")
    assert sorted(p.name for p in directory.iterdir()) == [running.name]


def writer(path: Path, code: int, sleep: float = 0.0) -> subprocess.Popen:
    """A stand-in JVM: writes ``path`` (as a JVM writes its archive at exit) and exits with ``code``."""
    script = f"import time, sys; time.sleep({sleep}); open({str(path)!r}, 'wb').write(b'x' * 4096); sys.exit({code})"
    return subprocess.Popen([sys.executable, "-c", script])


def test_finish_moves_a_written_archive_into_place(tmp_path, caplog):
    directory = tmp_path / "spark-cds"
    directory.mkdir()
    (directory / "older-jdk.jsa").write_bytes(b"old")
    archive = JvmArchive(directory / "key.jsa", directory / "key.123.tmp")
    with caplog.at_level("INFO", logger="janus_build.match.jvm_archive"):
        assert jvm_archive.finish(archive, writer(archive.writing, 0))
    assert sorted(p.name for p in directory.iterdir()) == ["key.jsa"]
    assert archive.path.stat().st_size == 4096
    assert "wrote" in caplog.text and str(archive.path) in caplog.text


def test_finish_keeps_nothing_of_a_failed_or_stuck_writer(tmp_path, caplog):
    archive = JvmArchive(tmp_path / "key.jsa", tmp_path / "key.123.tmp")
    assert not jvm_archive.finish(archive, writer(archive.writing, 1))  # the JVM failed: the file may be torn
    assert list(tmp_path.iterdir()) == []
    stuck = writer(archive.writing, 0, sleep=60)
    assert not jvm_archive.finish(archive, stuck, timeout=0.5)
    assert stuck.poll() is not None  # killed, not left running
    assert list(tmp_path.iterdir()) == []
    assert "not written" in caplog.text
