"""A class-data archive (CDS) of the Spark driver JVM janus launches: about 1 s off each start.

Each start of Spark's driver JVM loads, parses and verifies some 8,000 classes from ~250 jars.
A JDK class-data archive holds them ready to map. On Java 13+ a JVM writes one when it exits
(``-XX:ArchiveClassesAtExit``) and a later JVM maps it (``-XX:SharedArchiveFile``); the JVM
itself checks that the archive fits its JDK and class path, and runs without it when not.

janus keeps one archive per installation in ``<cache>/spark-cds/<key>.jsa`` (``<cache>``:
``JANUS_CACHE_DIR``, else ``$XDG_CACHE_HOME/janus``, else ``~/.cache/janus``). The key hashes
what the archive depends on: the java binary and ``libjvm``, ``SPARK_HOME`` and its jars, and
the JVM options. The first Spark run without one records its classes; when it ends janus stops
that JVM, which writes ``<key>.<pid>.tmp``, and renames the file into place only after the JVM
exited cleanly (a truncated archive crashes the JVM that maps it). A start that fails while
mapping an archive is retried without it, and the archive is removed. ``JANUS_SPARK_CDS=0``
turns all of this off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DIRECTORY = "spark-cds"
QUIET = "-Xlog:cds*=off -Xlog:class+path=off"  # the JVM logs CDS warnings to stdout otherwise
WRITE_TIMEOUT = 180.0  # seconds a JVM may take to write its archive and exit
STALE_SECONDS = 3600.0  # a temporary file this old, whose writer is gone, is removed


@dataclass(frozen=True)
class JvmArchive:
    """The archive for one JVM installation: ``path`` when it exists, else ``writing`` (this run writes it)."""

    path: Path
    writing: Path | None = None

    @property
    def java_options(self) -> str:
        """The options that map the archive, or have the JVM write it when it exits."""
        if self.writing is not None:
            return f"-XX:ArchiveClassesAtExit={self.writing} {QUIET}"
        return f"-XX:SharedArchiveFile={self.path} {QUIET}"


def cache_dir() -> Path:
    """janus's cache: ``JANUS_CACHE_DIR``, else ``$XDG_CACHE_HOME/janus``, else ``~/.cache/janus``."""
    if os.environ.get("JANUS_CACHE_DIR"):
        return Path(os.environ["JANUS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "janus"


def plan(spark_home: str, java_options: str) -> JvmArchive | None:
    """The archive a driver JVM started with ``java_options`` maps or writes; None: none (see the module)."""
    if os.environ.get("JANUS_SPARK_CDS", "1").strip() == "0":
        return None
    java = java_binary()
    if java is None or (java_major(java) or 0) < 13:
        return None
    try:
        key = archive_key(java, spark_home, java_options)
        directory = cache_dir() / DIRECTORY
        path = directory / f"{key}.jsa"
        if path.is_file():
            return JvmArchive(path)
        directory.mkdir(parents=True, exist_ok=True)
        _remove_stale(directory)
    except OSError as exc:
        log.debug("no JVM class-data archive: %s", exc)
        return None
    return JvmArchive(path, directory / f"{key}.{os.getpid()}.tmp")


def java_binary() -> str | None:
    """The java spark-submit runs: ``$JAVA_HOME/bin/java``, else the one on PATH (resolved)."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    return os.path.realpath(java) if java and os.path.isfile(java) else None


def java_major(java: str) -> int | None:
    """The feature version (17 for 17.0.15) from the JDK's ``release`` file; None when unknown."""
    release = Path(java).parent.parent / "release"
    try:
        match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"), re.M)
    except OSError:
        return None
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # 1.8 -> 8


def archive_key(java: str, spark_home: str, java_options: str) -> str:
    """A hash of everything the archive depends on: a new JDK, Spark or option set gets a new archive."""
    home = Path(java).parent.parent
    digest = hashlib.sha256()
    for path in (Path(java), home / "release", *sorted(home.glob("lib/*/libjvm.so"))):
        digest.update(_stamp(path))
    jars = Path(spark_home) / "jars"
    digest.update(os.path.realpath(spark_home).encode())
    for jar in sorted(jars.iterdir()) if jars.is_dir() else ():
        digest.update(_stamp(jar))
    digest.update(java_options.encode())
    return digest.hexdigest()[:20]


def _stamp(path: Path) -> bytes:
    stat = path.stat()
    return f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()


def _remove_stale(directory: Path) -> None:
    """Temporary files of writers that died (their JVM was killed, or ours timed out)."""
    now = time.time()
    for tmp in directory.glob("*.tmp"):
        pid = tmp.suffixes[-2].lstrip(".") if len(tmp.suffixes) >= 2 else ""
        try:
            if now - tmp.stat().st_mtime > STALE_SECONDS or not _alive(pid):
                tmp.unlink()
        except OSError:
            continue


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def finish(archive: JvmArchive, jvm: subprocess.Popen, timeout: float = WRITE_TIMEOUT) -> bool:
    """Wait for ``jvm`` (told to exit) to write ``archive.writing``, then move it into place.

    Returns whether the archive is in place. The JVM is killed past ``timeout``; a JVM that
    fails, or leaves no archive, leaves nothing behind either.
    """
    assert archive.writing is not None
    started = time.perf_counter()
    try:
        code = jvm.wait(timeout)
    except subprocess.TimeoutExpired:
        jvm.kill()
        jvm.wait()
        code = None
    try:
        if code == 0 and archive.writing.is_file() and archive.writing.stat().st_size > 0:
            os.replace(archive.writing, archive.path)
            for other in archive.path.parent.glob("*.jsa"):
                if other != archive.path:  # an earlier JDK's or Spark's: it would never map again
                    other.unlink(missing_ok=True)
            size = archive.path.stat().st_size / 2**20
            log.info("wrote %s (%.0f MiB) in %.1f s", archive.path, size, time.perf_counter() - started)
            return True
        log.warning("the JVM class-data archive was not written (JVM exit status %s); Spark runs without it", code)
        archive.writing.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not keep the JVM class-data archive %s: %s", archive.path, exc)
    return False


def discard(archive: JvmArchive) -> None:
    """Remove an archive a JVM could not start with (the next run writes a new one)."""
    for path in (archive.path, archive.writing):
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove %s: %s", path, exc)
