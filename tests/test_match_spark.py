"""--engine spark gives exactly the local engine's shards and stats (PySpark in local mode)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.match import MatchConfig, run_match

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark")


def test_spark_matches_local_exactly(tmp_path, laion_sample):
    source = pq.read_table(laion_sample)
    pq.write_table(source.slice(0, 600), tmp_path / "a.parquet")
    pq.write_table(source.slice(600), tmp_path / "b c.parquet")  # a space: Spark sees it URL-encoded
    odd = pa.table(
        {
            "TEXT": ["a goose", None, "", "lion " * 30_000, "koala", "tiger shark"],
            "URL": ["u"] * 6,
            "truth": pa.array([99, 99, -1, 291, 8, 3], pa.int32()),
        }
    )
    pq.write_table(odd, tmp_path / "odd.parquet")
    common = dict(inputs=(str(tmp_path / "*.parquet"),), labels="in1k", strategy="mc")
    local = run_match(MatchConfig(out=str(tmp_path / "local"), **common))
    spark = run_match(MatchConfig(out=str(tmp_path / "spark"), engine="spark", workers=2, **common))
    assert local == spark and spark["shards"] == 2  # a and "b c" packed into one shard, odd (other columns) alone
    for name in ("00000", "00001"):
        a = pq.read_table(tmp_path / "local" / f"{name}.parquet")
        b = pq.read_table(tmp_path / "spark" / f"{name}.parquet")
        assert a.column_names == b.column_names
        assert a.to_pylist() == b.to_pylist()
    assert sorted(p.name for p in (tmp_path / "spark").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir()
    )
    # ground-truth figures too
    only_odd = dict(inputs=(str(tmp_path / "odd.parquet"),), truth_col="truth", max_caption_chars=100_000)
    local = run_match(MatchConfig(out=str(tmp_path / "l2"), **only_odd))
    spark = run_match(MatchConfig(out=str(tmp_path / "s2"), engine="spark", **only_odd))
    assert local == spark
    assert spark["unlabelled_reasons"] == {"empty": 2, "non_text": 0, "too_long": 1}
    marker = json.loads((tmp_path / "s2" / "_stats" / "00000.json").read_text())
    assert marker == json.loads((tmp_path / "l2" / "_stats" / "00000.json").read_text())


def test_file_names_spark_would_url_decode(tmp_path):
    """`laion+part1.parquet` once gave an empty shard and exit 0 ('+' decoded as a space)."""
    for name in ("laion+part1.parquet", "b%20c.parquet", "d e.parquet"):
        pq.write_table(pa.table({"TEXT": ["a goose", "a lion", "nothing"]}), tmp_path / name)
    stats = run_match(MatchConfig(inputs=(str(tmp_path / "*.parquet"),), out=str(tmp_path / "o"), engine="spark"))
    assert stats["rows"] == 9 and stats["labelled"] == 6
    table = pq.read_table(tmp_path / "o")
    assert table.num_rows == 9 and len(set(table.column("key").to_pylist())) == 9


def test_unreachable_master_is_one_fast_line(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "a.parquet"
    pq.write_table(pa.table({"TEXT": ["a goose"]}), data)
    master = f"spark://127.0.0.1:{port}"
    done = subprocess.run(
        [sys.executable, "-m", "janus_build", "match", str(data), "--out", str(tmp_path / "o")]
        + ["--engine", "spark", "--spark-master", master],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--spark-master {master}: cannot connect to 127.0.0.1:{port}" in " ".join(done.stderr.split())


def test_missing_java_is_a_one_line_error(tmp_path):
    import os
    import subprocess
    import sys

    data = tmp_path / "a.parquet"
    pq.write_table(pa.table({"TEXT": ["a goose"]}), data)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = os.path.dirname(sys.executable)  # python, but no java
    done = subprocess.run(
        [sys.executable, "-m", "janus_build", "match", str(data), "--out", str(tmp_path / "o"), "--engine", "spark"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert "needs Java 17+" in done.stderr and "Traceback" not in done.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, seconds: float = 90) -> bool:
    import socket
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A Spark standalone master and one worker on 127.0.0.1, from the scripts PySpark ships."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not spark_class.is_file() or shutil.which("java") is None:
        pytest.skip("no spark-class or no java")
    work = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env["SPARK_HOME"] = str(spark_class.parent.parent)
    port = _free_port()
    procs = []
    logs = open(work / "cluster.log", "w")
    procs.append(
        subprocess.Popen(
            [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
            + ["--port", str(port), "--webui-port", str(_free_port())],
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )
    master = f"spark://127.0.0.1:{port}"
    try:
        if not _wait_port(port):
            pytest.fail(f"the standalone master did not start: {(work / 'cluster.log').read_text()[-2000:]}")
        procs.append(
            subprocess.Popen(
                [str(spark_class), "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1"]
                + ["--cores", "2", "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(work)],
                env=env,
                stdout=logs,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        deadline = time.time() + 90
        while "Registered worker" not in (work / "cluster.log").read_text() and time.time() < deadline:
            time.sleep(0.2)
        yield master, env
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        logs.close()


@pytest.mark.slow
def test_a_standalone_master_and_worker_on_loopback(tmp_path, standalone_cluster):
    import subprocess
    import sys

    master, env = standalone_cluster
    for i, name in enumerate(("laion+part1.parquet", "part 2.parquet")):
        pq.write_table(pa.table({"TEXT": ["a goose", "a lion", f"nothing {i}"]}), tmp_path / name)
    cmd = [sys.executable, "-m", "janus_build", "match", str(tmp_path / "*.parquet"), "--labels", "in1k"]
    done = subprocess.run(
        [*cmd, "--out", str(tmp_path / "cluster"), "--engine", "spark", "--spark-master", master],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    subprocess.run([*cmd, "--out", str(tmp_path / "local")], check=True, capture_output=True)
    for name in sorted(p.name for p in (tmp_path / "local").glob("0*.parquet")):
        assert pq.read_table(tmp_path / "cluster" / name).equals(pq.read_table(tmp_path / "local" / name))
    cluster = json.loads((tmp_path / "cluster" / "_stats.json").read_text())
    assert cluster["rows"] == 6 and cluster == json.loads((tmp_path / "local" / "_stats.json").read_text())


@pytest.fixture
def spark_context():
    """The SparkContext the engine would use (the active one, else local[2]); at least 2 task slots."""
    from janus_build.match.spark import spark_context

    config = MatchConfig(inputs=("unused",), out="unused", engine="spark", workers=2)
    context = spark_context(config)
    if context.defaultParallelism < 2:  # an earlier test's one-slot context: these tests need two
        context.stop()
        context = spark_context(config)
    assert context.defaultParallelism >= 2
    return context


def test_one_job_runs_every_task_at_once(tmp_path, spark_context):
    """toLocalIterator ran a job per input file, 1-2 at a time: a cluster's other cores stood idle."""
    from janus_build.match.spark import run_job

    def rendezvous(name):  # each task waits (a minute at most) until the other has started
        import time

        from pyspark import TaskContext

        (tmp_path / name).touch()
        deadline = time.time() + 60
        while len(list(tmp_path.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.05)
        met = len(list(tmp_path.iterdir()))
        return {"stats": {"rows": 10}, "met": met, "stage": TaskContext.get().stageId()}

    advanced = []
    outcomes = run_job(spark_context, rendezvous, ["a", "b"], advanced.append, lambda outcome: outcome)
    assert [o["met"] for o in outcomes] == [2, 2]  # both tasks were running at the same time
    assert len({o["stage"] for o in outcomes}) == 1  # as tasks of one job
    assert sum(advanced) == 20


def test_an_active_context_is_used_as_it_is(spark_context, monkeypatch, caplog):
    """spark-submit or a notebook started it: janus neither starts another nor changes its master."""
    from janus_build.match.spark import spark_context as get_context

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # set after the context started
    other = "local[7]" if spark_context.master != "local[7]" else "local[6]"
    config = MatchConfig(inputs=("unused",), out="unused", engine="spark", spark_master=other)
    with caplog.at_level("WARNING", logger="janus_build.match.spark"):
        assert get_context(config) is spark_context
    assert f"--spark-master {other}: a SparkContext on {spark_context.master} is already active" in caplog.text
    # its local executors still read the store as this process does now
    assert spark_context.environment["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    with caplog.at_level("ERROR", logger="janus_build.match.spark"):
        get_context(config)
    assert "AWS_ENDPOINT_URL" not in spark_context.environment


def test_a_failed_task_raises_through_check_and_progress_adds_up(spark_context):
    from janus_build.errors import InputError
    from janus_build.match.spark import run_job

    def task(item):
        if item == "bad":
            return {"bad": {"path": item, "error": "bad.parquet: no column TEXT", "kind": "InputError"}}
        return {"stats": {"rows": len(item)}}

    def check(outcome):
        if "bad" in outcome:
            raise InputError(outcome["bad"]["error"])
        return outcome

    advanced = []
    outcomes = run_job(spark_context, task, ["xx", "yyy", "z"], advanced.append, check)
    assert [o["stats"]["rows"] for o in outcomes] == [2, 3, 1] and sum(advanced) == 6
    with pytest.raises(InputError, match="no column TEXT"):
        run_job(spark_context, task, ["xx", "bad", "z"], advanced.append, check)
    seen = []
    outcomes = run_job(spark_context, task, ["bad", "xx"], advanced.append, seen.append)  # --skip-bad-inputs
    assert sorted(seen, key=str) == sorted(outcomes, key=str)  # each outcome checked once


@pytest.fixture
def fresh_launch(tmp_path, monkeypatch):
    """As if no JVM ran yet in this process and the user configured nothing."""
    import pyspark

    from janus_build.match.spark import JVM_OPTION_VARIABLES

    monkeypatch.setattr(pyspark.SparkContext, "_jvm", None)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf_dir))
    for name in (*JVM_OPTION_VARIABLES, "PYSPARK_SUBMIT_ARGS", "PYSPARK_GATEWAY_PORT", "SPARK_MASTER"):
        monkeypatch.delenv(name, raising=False)
    return conf_dir


def test_jvm_defaults_only_where_the_user_set_none(fresh_launch, monkeypatch):
    from janus_build.match.spark import DRIVER_JVM_DEFAULTS, spark_conf

    conf = spark_conf("local[1]", True)
    assert conf.get("spark.driver.extraJavaOptions") == DRIVER_JVM_DEFAULTS["spark.driver.extraJavaOptions"]
    assert conf.get("spark.ui.enabled") == "false"

    (fresh_launch / "spark-defaults.conf").write_text(
        "# the user's\nspark.driver.extraJavaOptions   -XX:+UseG1GC\nspark.ui.enabled=true\n"
    )
    conf = spark_conf("local[1]", True)  # spark-submit applies the file; janus must not override it
    assert not conf.contains("spark.driver.extraJavaOptions") and not conf.contains("spark.ui.enabled")

    (fresh_launch / "spark-defaults.conf").unlink()
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-java-options '-Xmx2g' pyspark-shell")
    assert not spark_conf("local[1]", True).contains("spark.driver.extraJavaOptions")
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:+UseParallelGC")  # two collectors would stop the JVM
    assert not spark_conf("local[1]", True).contains("spark.driver.extraJavaOptions")
    monkeypatch.delenv("JAVA_TOOL_OPTIONS")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "1")  # spark-submit launched the JVM already
    assert not spark_conf("local[1]", True).contains("spark.driver.extraJavaOptions")


def test_spark_defaults_master_stands(fresh_launch):
    from janus_build.match.spark import choose_master

    config = MatchConfig(inputs=("unused",), out="unused", engine="spark", workers=3)
    assert choose_master(config) == ("local[3]", True)
    (fresh_launch / "spark-defaults.conf").write_text("spark.master spark://head:7077\n")
    assert choose_master(config) == ("spark://head:7077", False)


def test_a_stopped_context_does_not_choose_the_next_master():
    """A notebook's stopped local[1] session left spark.master in the JVM; janus took it for the user's."""
    from pyspark import SparkConf, SparkContext

    from janus_build.match.spark import spark_context

    active = SparkContext._active_spark_context
    if active is not None:
        active.stop()
    SparkContext(conf=SparkConf().setMaster("local[1]").setAppName("a notebook")).stop()
    context = spark_context(MatchConfig(inputs=("unused",), out="unused", engine="spark", workers=3))
    assert context.master == "local[3]"
    context.stop()


def test_local_executors_get_the_installed_pyspark_and_unix_sockets(fresh_launch):
    """Local executors: PySpark's zip was compiled at each daemon start; loopback TCP stalled ~45 ms a task."""
    from janus_build.match.spark import spark_conf

    for master in ("local[2]", "spark://127.0.0.1:7077"):
        conf = spark_conf(master, True)
        assert conf.get("spark.python.daemon.module") == "janus_build.match.spark_daemon"
        assert conf.get("spark.python.unix.domain.socket.enabled") == "true"
    remote = spark_conf("spark://head:7077", True)  # its workers' Python and SPARK_HOME are theirs
    assert not remote.contains("spark.python.daemon.module")
    assert not remote.contains("spark.python.unix.domain.socket.enabled")
    (fresh_launch / "spark-defaults.conf").write_text("spark.python.daemon.module  pyspark.daemon\n")
    assert not spark_conf("local[2]", True).contains("spark.python.daemon.module")  # the file's stands


def test_no_archive_where_the_user_chose_jvm_options(fresh_launch, monkeypatch):
    from janus_build.match.spark import _plan

    config = MatchConfig(inputs=("unused",), out="unused", engine="spark", spark_master="local[1]")
    assert _plan(config).archive_ok
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-java-options '-Xmx4g' pyspark-shell")
    assert not _plan(config).archive_ok
