"""``janus match --engine spark``: the shards distributed over Spark executors.

Spark is used as a distributor only (img2dataset's pattern): each input file is one Spark task
running :func:`janus_build.match.shard.run_shard`, the very function local worker processes
run, so shards, keys, markers and stats are identical by construction. Executors read their
input and write their shard and marker themselves, through pyarrow's filesystems: on a cluster,
inputs and ``--out`` are URIs every node can reach (``s3://``, ``gs://``, ``hdfs://``) or a
shared mount. No Spark SQL reader is involved, so no file name is ever URL-decoded.

The cluster: ``--spark-master URL`` (``local[N]``, ``spark://host:7077``, ``k8s://...``, ``yarn``),
else ``SPARK_MASTER``, else what spark-submit configured, else ``local[--workers]``. A
``spark://`` or ``k8s://`` master is probed with a TCP connect first, so an unreachable one fails
in seconds with a line naming it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from janus_build.errors import ConfigError, MissingResourceError
from janus_build.progress import Progress

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds per master address
STORE_ENV_PREFIXES = ("AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "HADOOP_", "ARROW_")


def master_addresses(master: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each address a ``spark://`` (HA: comma-separated) or ``k8s://`` master names."""
    if master.startswith("spark://"):
        out = []
        for item in master[len("spark://") :].split(","):
            host, _, port = item.strip().rpartition(":")
            out.append((host or item, int(port) if port.isdigit() else 7077))
        return out
    if master.startswith("k8s://"):
        rest = master[len("k8s://") :]
        split = urlsplit(rest if "://" in rest else f"https://{rest}")
        return [(split.hostname or "", split.port or (443 if split.scheme == "https" else 80))]
    return []


def check_master(master: str) -> None:
    """Fail fast, naming the master, when none of its addresses accepts a connection.

    Raises:
        ConfigError: no address of ``master`` can be reached.
    """
    errors = []
    for host, port in master_addresses(master):
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                return
        except OSError as exc:
            errors.append(f"{host}:{port} ({exc.strerror or type(exc).__name__})")
    if errors:
        raise ConfigError(
            f"--spark-master {master}: cannot connect to {', '.join(errors)}; is the master running and reachable?"
        )


def choose_master(config: Any) -> tuple[str, bool]:
    """The master URL, and whether janus sets it (False: spark-submit's ``spark.master`` stands)."""
    from pyspark import SparkConf

    if config.spark_master:
        return config.spark_master, True
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"], True
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # run by spark-submit: its --master stands
        return "spark-submit's master", False
    conf = SparkConf()
    if conf.contains("spark.master"):
        return conf.get("spark.master"), False
    return f"local[{config.workers}]", True


def _import_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingResourceError(
            "--engine spark needs PySpark: pip install 'janus-build[spark]' (and Java 17+)"
        ) from None
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise MissingResourceError(
            "--engine spark needs Java 17+ (none on PATH and JAVA_HOME unset): "
            "install a JDK (e.g. apt-get install openjdk-17-jre-headless) or use --engine local"
        )


def spark_session(config: Any) -> Any:
    """The active SparkSession, or a new one on the chosen master (see the module docstring)."""
    _import_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if config.spark_master and active.sparkContext.master != config.spark_master:
            log.warning(
                "--spark-master %s: a SparkSession on %s is already active in this process; using it",
                config.spark_master,
                active.sparkContext.master,
            )
        return active
    master, ours = choose_master(config)
    check_master(master)
    builder = SparkSession.builder.appName("janus match")
    if ours:
        builder = builder.master(master)
    if master.startswith("local") or _loopback(master):  # executors are this machine: this interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        package_root = os.fspath(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        builder = builder.config("spark.executorEnv.PYTHONPATH", path)
        # this machine's executors read the store as this process does (a JVM started earlier in
        # this process would otherwise hand them its own, older environment); a remote cluster's
        # executors take credentials from their own nodes (docs/scaling.md)
        for name, value in os.environ.items():
            if name.startswith(STORE_ENV_PREFIXES):
                builder = builder.config(f"spark.executorEnv.{name}", value)
    builder = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # PySpark raises its own runtime errors when the JVM cannot start
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise MissingResourceError(
            f"--engine spark: Spark could not start on {master} "
            f"({type(exc).__name__}: {first}); check Java 17+ and JAVA_HOME, or use --engine local"
        ) from None
    session.sparkContext.setLogLevel(os.environ.get("JANUS_SPARK_LOG_LEVEL", "ERROR"))
    return session


def _loopback(master: str) -> bool:
    return any(host in ("127.0.0.1", "localhost", "::1") for host, _ in master_addresses(master))


def run_spark(todo: list[Any], config: Any, progress: Progress) -> list[dict[str, Any]]:
    """Run the ``todo`` shards as Spark tasks (one per input file); returns their outcomes."""
    if not todo:
        return []
    from janus_build.match.engine import check_outcome

    spark = spark_session(config)
    rdd = spark.sparkContext.parallelize(todo, len(todo)).map(_spark_shard)
    outcomes = []
    for outcome in rdd.toLocalIterator(prefetchPartitions=True):
        outcomes.append(check_outcome(outcome, config))
        progress.advance("match", outcome.get("stats", {}).get("rows", 0))
    return outcomes


def _spark_shard(task: Any) -> dict[str, Any]:
    """:func:`run_shard` on an executor; a JanusError comes back as data (Spark would bury it in a JVM trace)."""
    from janus_build.errors import JanusError
    from janus_build.match.shard import run_shard

    try:
        return run_shard(task)
    except JanusError as exc:
        return {"fatal": {"kind": type(exc).__name__, "error": str(exc)}}
