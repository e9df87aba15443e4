"""``janus match --engine spark``: the shards distributed over Spark executors.

Spark is used as a distributor only (img2dataset's pattern): each task the engine prepares (an
input file, or several small ones packed together) becomes one Spark task running
:func:`janus_build.match.shard.run_shard`, the very function local worker processes run, so
shards, keys, markers and stats are identical by construction. All tasks are ONE Spark job
(:func:`run_job`), so every executor core works at once; the driver follows the finished tasks
through an accumulator (progress, and an early stop on a failed task). Executors read their input
and write their shard and marker themselves, through pyarrow's filesystems: on a cluster, inputs
and ``--out`` are URIs every node can reach (``s3://``, ``gs://``, ``hdfs://``) or a shared mount.
No Spark SQL reader is involved, so no file name is ever URL-decoded, and only a SparkContext is
started (a SparkSession costs seconds more).

The cluster: ``--spark-master URL`` (``local[N]``, ``spark://host:7077``, ``k8s://...``, ``yarn``),
else ``SPARK_MASTER``, else what spark-submit or ``spark-defaults.conf`` configured, else
``local[--workers]``. A ``spark://`` or ``k8s://`` master is probed with a TCP connect first, so an
unreachable one fails in seconds with a line naming it. An active SparkContext (spark-submit, a
notebook) is used as it is. When janus launches the driver JVM itself it sets start-up defaults
(:data:`DRIVER_JVM_DEFAULTS`, no UI) only where the user configured none, and the JVM maps a
class-data archive (:mod:`~janus_build.match.spark_launch`). Executors on this machine get
:data:`LOCAL_DEFAULTS` (PySpark imported from its installed package, Unix sockets).
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
QUIET = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
# Only when janus launches the driver JVM and the user set no JVM options: C1 only and the serial
# collector start it ~0.5-0.9 s sooner, and a driver that hands out tasks and collects small
# outcome dicts needs neither C2 nor a parallel collector. (A second collector option would stop
# the JVM, hence "no JVM options at all" rather than a merge.)
DRIVER_JVM_DEFAULTS = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}
JVM_OPTION_VARIABLES = ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "SPARK_SUBMIT_OPTS")
JVM_OPTION_KEYS = ("spark.driver.extraJavaOptions", "spark.driver.defaultJavaOptions")
DAEMON_MODULE = "spark.python.daemon.module"
# Where the executors are this machine: PySpark imported from its installed package, not its zip
# (spark_daemon.py: ~0.45 s of the first task), and Unix sockets between the JVM and Python,
# where loopback TCP stalls ~45 ms per task (Nagle's algorithm against delayed ACKs).
LOCAL_DEFAULTS = {
    DAEMON_MODULE: "janus_build.match.spark_daemon",
    **({"spark.python.unix.domain.socket.enabled": "true"} if hasattr(socket, "AF_UNIX") else {}),
}
SUBMIT_FLAGS = {"--master": "spark.master", "--driver-java-options": "spark.driver.extraJavaOptions"}


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
    if config.spark_master:
        return config.spark_master, True
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"], True
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # run by spark-submit: its --master stands
        return "spark-submit's master", False
    # Not SparkConf(): once a context has run in this process its JVM's system properties hold
    # that context's master, which would outlive it (a notebook's stopped local[1] session).
    user = user_spark_conf()  # spark-defaults.conf or PYSPARK_SUBMIT_ARGS
    if "spark.master" in user:
        return user["spark.master"], False
    return f"local[{config.workers}]", True


def user_spark_conf() -> dict[str, str]:
    """The ``spark.*`` settings a JVM launched from this process gets from the user.

    PySpark launches it through spark-submit, which reads ``spark-defaults.conf`` (in
    ``SPARK_CONF_DIR``, else ``SPARK_HOME/conf``, or ``--properties-file``) and
    ``PYSPARK_SUBMIT_ARGS``; a ``SparkConf`` made before that launch sees neither.
    """
    import shlex

    args = shlex.split(os.environ.get("PYSPARK_SUBMIT_ARGS", ""))
    path = next((value for flag, value in zip(args, args[1:]) if flag == "--properties-file"), None)
    settings = _read_properties(path or os.path.join(_spark_conf_dir(), "spark-defaults.conf"))
    for flag, value in zip(args, args[1:]):
        if flag == "--conf" and "=" in value:
            key, _, setting = value.partition("=")
            settings[key.strip()] = setting
        elif flag in SUBMIT_FLAGS:
            settings[SUBMIT_FLAGS[flag]] = value
    return settings


def _spark_conf_dir() -> str:
    if os.environ.get("SPARK_CONF_DIR"):
        return os.environ["SPARK_CONF_DIR"]
    from pyspark.find_spark_home import _find_spark_home

    return os.path.join(os.environ.get("SPARK_HOME") or _find_spark_home(), "conf")


def _read_properties(path: str) -> dict[str, str]:
    """``key value`` / ``key=value`` lines of a Java properties file (spark-defaults.conf); {} if absent."""
    import re

    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    settings = {}
    for line in lines:
        match = re.match(r"\s*([^\s=:#!][^\s=:]*)\s*[=:\s]\s*(.*?)\s*$", line)
        if match:
            settings[match.group(1)] = match.group(2)
    return settings


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


def _plan(config: Any) -> Any:
    """The master, the conf, and whether the driver JVM may map a class-data archive (janus's JVM options)."""
    from janus_build.match.spark_launch import JVM_OPTIONS, Plan

    master, ours = choose_master(config)
    check_master(master)
    conf = spark_conf(master, ours)
    return Plan(conf, master, archive_ok=conf.get(JVM_OPTIONS, None) == DRIVER_JVM_DEFAULTS[JVM_OPTIONS])


def spark_context(config: Any) -> Any:
    """The active SparkContext, or a new one on the chosen master (see the module docstring).

    Only a SparkContext: the engine runs RDD tasks, and a SparkSession (Spark SQL) would add
    seconds of start-up for nothing.
    """
    return open_context(config)[0]


def open_context(config: Any) -> tuple[Any, Any]:
    """:func:`spark_context`, and the driver JVM janus launched for it (None: it launched none)."""
    from janus_build.match.spark_launch import cannot_start, launch

    _import_pyspark()
    from pyspark import SparkContext

    active = SparkContext._active_spark_context
    if active is not None:
        if config.spark_master and active.master != config.spark_master:
            log.warning(
                "--spark-master %s: a SparkContext on %s is already active in this process; using it",
                config.spark_master,
                active.master,
            )
        return _local_store_env(active), None
    plan = _plan(config)
    launched = launch(plan) if SparkContext._gateway is None else None  # else PySpark uses this process's JVM
    try:
        context = SparkContext(conf=plan.conf, gateway=launched.gateway if launched else None)
    except Exception as exc:  # PySpark raises its own runtime errors when the JVM cannot start
        raise cannot_start(plan.master, exc) from None
    context.setLogLevel(os.environ.get("JANUS_SPARK_LOG_LEVEL", "ERROR"))
    return _local_store_env(context), launched


def _local_store_env(context: Any) -> Any:
    """Executors on this machine read the store as this process does, now.

    Their Python workers get ``context.environment`` with each job, so this holds for a context
    started earlier in this process, too (its JVM keeps the environment it started with). A remote
    cluster's executors take credentials from their own nodes: janus never sends them there.
    A variable janus passed earlier and this process no longer has is taken back.
    """
    if context.master.startswith("local") or _loopback(context.master):
        for name in _PASSED_ENV - os.environ.keys():
            context.environment.pop(name, None)
        for name, value in os.environ.items():
            if name.startswith(STORE_ENV_PREFIXES):
                context.environment[name] = value
                _PASSED_ENV.add(name)
    return context


_PASSED_ENV: set[str] = set()


def spark_conf(master: str, ours: bool) -> Any:
    """The SparkConf janus starts its context with: what it needs, then defaults the user has not set."""
    from pyspark import SparkConf

    conf = SparkConf().setAppName("janus match")
    if ours:
        conf.setMaster(master)
    defaults = dict(QUIET)
    if master.startswith("local") or _loopback(master):  # executors are this machine: this interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf.set("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        package_root = os.fspath(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        conf.set("spark.executorEnv.PYTHONPATH", path)
        defaults.update(LOCAL_DEFAULTS)
    user = user_spark_conf()
    launching = not os.environ.get("PYSPARK_GATEWAY_PORT")  # else spark-submit started the JVM
    if launching and not _jvm_options_configured(conf, user):
        defaults.update(DRIVER_JVM_DEFAULTS)
    for key, value in defaults.items():
        if key not in user:
            conf.setIfMissing(key, value)
    return conf


def _loopback(master: str) -> bool:
    return any(host in ("127.0.0.1", "localhost", "::1") for host, _ in master_addresses(master))


def _jvm_options_configured(conf: Any, user: dict[str, str]) -> bool:
    if any(os.environ.get(name, "").strip() for name in JVM_OPTION_VARIABLES):
        return True
    return any(key in user or conf.contains(key) for key in JVM_OPTION_KEYS)


def run_spark(todo: list[Any], config: Any, progress: Progress) -> list[dict[str, Any]]:
    """Run the ``todo`` tasks on Spark as one job; returns their outcomes in ``todo`` order.

    Raises:
        JanusError: a task's ``{"fatal": ...}`` outcome, or a ``{"bad": ...}`` one without
            ``--skip-bad-inputs`` (:func:`~janus_build.match.engine.check_outcome`); the job's
            remaining tasks are cancelled.
    """
    if not todo:
        return []
    from janus_build.match.engine import check_outcome
    from janus_build.match.spark_launch import write_archive

    context, launched = open_context(config)
    outcomes = run_job(
        context,
        _spark_shard,
        todo,
        lambda rows: progress.advance("match", rows),
        lambda outcome: check_outcome(outcome, config),
    )
    if launched is not None:
        write_archive(context, launched)  # only on the run that records the archive
    return outcomes


def run_job(
    context: Any, function: Any, items: list[Any], advance: Any, check: Any, poll: float = 0.2
) -> list[dict[str, Any]]:
    """``function(item)`` for each of ``items`` as the tasks of ONE Spark job, so every executor core works at once.

    ``function`` returns an outcome dict (``{"stats": {"rows": n, ...}}``, ``{"bad": ...}`` or
    ``{"fatal": ...}``); ``advance(rows)`` reports progress, ``check(outcome)`` raises on a failed
    one. Returns the outcomes in ``items`` order.

    ``collect()`` runs in a thread under a job group of its own while this one polls an
    accumulator: each finished task reports its rows (progress) and, when it failed, its outcome
    (``check`` raises on it, and the job is cancelled). The collected outcomes settle the rows
    exactly at the end. A retried task reports under its index again, so nothing counts twice.
    """
    import threading
    import uuid

    group = f"janus-match-{uuid.uuid4().hex}"
    finished = context.accumulator({}, _Latest())
    rdd = context.parallelize(list(enumerate(items)), len(items))
    rdd = rdd.map(lambda item: _spark_task(function, item, finished))
    result: dict[str, Any] = {}

    def collect() -> None:
        context.setJobGroup(group, "janus match", interruptOnCancel=True)
        try:
            result["outcomes"] = rdd.collect()
        except BaseException as exc:  # handed to the polling thread
            result["error"] = exc

    thread = threading.Thread(target=collect, name="janus-spark-collect", daemon=True)
    thread.start()
    advanced, checked = 0, set()
    try:
        while thread.is_alive():
            thread.join(poll)
            advanced = _report(finished.value, advance, check, advanced, checked)
        if "error" in result:
            raise result["error"]
    finally:
        if thread.is_alive():
            context.cancelJobGroup(group)
            thread.join()
    outcomes = dict(result["outcomes"])
    _report({index: _rows(outcome) for index, outcome in outcomes.items()}, advance, check, advanced, checked)
    for index, outcome in outcomes.items():
        if index not in checked:
            check(outcome)
    return [outcomes[index] for index in range(len(items))]


def _report(finished: dict[int, Any], advance: Any, check: Any, advanced: int, checked: set[int]) -> int:
    """Advance progress to the rows the finished tasks report; ``check`` each failed outcome once."""
    rows = sum(value for value in finished.values() if isinstance(value, int))
    if rows > advanced:
        advance(rows - advanced)
        advanced = rows
    for index, value in sorted(finished.items()):
        if isinstance(value, dict) and index not in checked:
            checked.add(index)
            check(value)
    return advanced


class _Latest:
    """AccumulatorParam of ``{task index: rows, or a failed task's outcome}``; the latest report wins."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, value1: dict, value2: dict) -> dict:  # PySpark names it so
        # a new dict, never an update: the driver reads the value while Spark's accumulator
        # server thread adds to it
        return {**value1, **value2}


def _spark_task(function: Any, item: tuple[int, Any], finished: Any) -> tuple[int, dict[str, Any]]:
    index, task = item
    outcome = function(task)
    failed = "fatal" in outcome or "bad" in outcome
    finished.add({index: {k: v for k, v in outcome.items() if k != "stats"} if failed else _rows(outcome)})
    return index, outcome


def _rows(outcome: dict[str, Any]) -> int:
    return outcome.get("stats", {}).get("rows", 0)


def _spark_shard(task: Any) -> dict[str, Any]:
    """:func:`run_shard` on an executor; a JanusError comes back as data (Spark would bury it in a JVM trace)."""
    from janus_build.errors import JanusError
    from janus_build.match.shard import run_shard

    try:
        return run_shard(task)
    except JanusError as exc:
        return {"fatal": {"kind": type(exc).__name__, "error": str(exc)}}
