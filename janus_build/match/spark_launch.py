"""The driver JVM janus launches for ``--engine spark``, and what shortens its start.

Spark's fixed cost on a small run is mostly this JVM's start. Here:

* the pandas import PySpark's first py4j call makes (its numpy converter's check imports
  ``pyspark.testing``) is done in a thread while the JVM starts, instead of while it waits
  (0.15-0.25 s; starting the JVM itself earlier, while janus imports and checks its inputs, gave
  nothing measurable on 2 cores: both want the CPU);
* the JVM maps a class-data archive of Spark's classes (:mod:`janus_build.match.jvm_archive`);
  the first run writes it, and :func:`write_archive` stops that run's JVM at its end so it can;
* a start that fails while mapping an archive is retried without it.

Only where janus launches the JVM: spark-submit's JVM, or one already running in this process
(a notebook), is used as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from janus_build.errors import MissingResourceError
from janus_build.match import jvm_archive
from janus_build.match.jvm_archive import JvmArchive
from janus_build.match.spark import JVM_OPTION_KEYS

log = logging.getLogger(__name__)

JVM_OPTIONS = JVM_OPTION_KEYS[0]  # spark.driver.extraJavaOptions


@dataclass(frozen=True)
class Plan:
    """What to launch: the conf, its master (for messages), and whether a class-data archive may be used."""

    conf: Any
    master: str
    archive_ok: bool


@dataclass(frozen=True)
class Launched:
    """A driver JVM janus launched: its py4j ``gateway`` (``gateway.proc`` is the JVM) and archive."""

    plan: Plan
    gateway: Any
    archive: JvmArchive | None


def launch(plan: Plan) -> Launched:
    """Launch the driver JVM ``plan`` describes, mapping (or recording) the class-data archive."""
    import threading

    threading.Thread(target=_warm_imports, name="janus-spark-imports", daemon=True).start()
    archive = None
    if plan.archive_ok:
        from pyspark.find_spark_home import _find_spark_home

        archive = jvm_archive.plan(_find_spark_home(), plan.conf.get(JVM_OPTIONS, ""))
    return Launched(plan, *launch_gateway(plan, archive))


def launch_gateway(plan: Plan, archive: JvmArchive | None) -> tuple[Any, JvmArchive | None]:
    """PySpark's ``launch_gateway`` with the archive's options; without them if the JVM cannot start with them.

    Raises:
        MissingResourceError: the JVM does not start (no usable Java, a bad option).
    """
    from pyspark.java_gateway import launch_gateway as pyspark_launch

    base = plan.conf.get(JVM_OPTIONS, "")
    if archive is not None:
        plan.conf.set(JVM_OPTIONS, f"{base} {archive.java_options}".strip())
    try:
        return pyspark_launch(plan.conf), archive
    except Exception as exc:  # PySpark raises its own runtime errors when the JVM exits at start
        if archive is None:
            raise cannot_start(plan.master, exc) from None
        log.warning("Spark's driver JVM did not start with %s; removing it and starting without it", archive.path)
        jvm_archive.discard(archive)
        plan.conf.set(JVM_OPTIONS, base)
    try:
        return pyspark_launch(plan.conf), None
    except Exception as exc:
        raise cannot_start(plan.master, exc) from None


def cannot_start(master: str, exc: BaseException) -> MissingResourceError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return MissingResourceError(
        f"--engine spark: Spark could not start on {master} "
        f"({type(exc).__name__}: {first}); check Java 17+ and JAVA_HOME, or use --engine local"
    )


def _warm_imports() -> None:
    try:
        import pyspark.testing.utils  # noqa: F401  (what PySpark's first py4j call would import)
    except Exception:  # only a head start: PySpark raises whatever it raises when it imports it itself
        pass


def _stop_jvm(gateway: Any) -> Any:
    """Close the py4j gateway and the JVM's stdin (PySpark's JVM exits at EOF); returns the JVM process."""
    jvm = getattr(gateway, "proc", None)
    try:
        gateway.shutdown()
    except Exception as exc:  # the JVM is going away either way
        log.debug("py4j gateway shutdown: %s", exc)
    if jvm is not None and jvm.stdin is not None:
        jvm.stdin.close()
    return jvm


def write_archive(context: Any, launched: Launched) -> None:
    """End the JVM of a run that records the class-data archive, so it writes it; move it into place."""
    from pyspark import SparkContext

    archive = launched.archive
    if archive is None or archive.writing is None or getattr(launched.gateway, "proc", None) is None:
        return
    log.info(
        "writing a class-data archive of Spark's driver JVM to %s (once per Java and Spark installation: "
        "later runs start about 1 s sooner; JANUS_SPARK_CDS=0 turns this off)",
        archive.path,
    )
    context.stop()
    jvm = _stop_jvm(launched.gateway)
    with SparkContext._lock:  # the next context in this process launches a new JVM
        if SparkContext._gateway is launched.gateway:
            SparkContext._gateway = None
            SparkContext._jvm = None
    jvm_archive.finish(archive, jvm)
