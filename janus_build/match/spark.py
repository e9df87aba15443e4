"""``janus match --engine spark``: the same matching on PySpark, for inputs past one machine.

Every record batch goes through the very function the local engine uses
(:func:`janus_build.match.engine.match_table_batch`) inside ``mapInArrow``, so labels, keys and
terms are identical; Spark only distributes the batches. Keys need each row's position in its
file, which Spark's parquet reader exposes as ``_metadata.row_index``.

Output layout is the local engine's: one ``NNNNN.parquet`` per input file (rows in file order)
and ``NNNNN_stats.json``; Spark writes them under ``DIR/_spark/`` and the driver moves each
shard into place once the job has committed. Runs in local mode unless ``SPARK_MASTER`` or
spark-submit configure a cluster (then ``--out`` must be on a filesystem every node sees).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from janus_build.core.stage import StageDir, shard_name
from janus_build.errors import InputError, MissingResourceError
from janus_build.progress import Progress

log = logging.getLogger(__name__)

_SHARD, _ROW, _REASON, _TRUTH = "__janus_shard", "__janus_row", "__janus_reason", "__janus_truth"


def spark_session(workers: int):
    """Return the active SparkSession, or start one (local[workers] unless SPARK_MASTER is set)."""
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingResourceError(
            "--engine spark needs PySpark: pip install 'janus-build[spark]' (and Java 17+)"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("janus match")
    if not SparkConf().contains("spark.master"):
        master = os.environ.get("SPARK_MASTER", f"local[{workers}]")
        builder = builder.master(master)
        if master.startswith("local"):  # executors are this machine: use this interpreter
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise MissingResourceError(
            "--engine spark needs Java 17+ (none on PATH and JAVA_HOME unset): "
            "install a JDK (e.g. apt-get install openjdk-17-jre-headless) or use --engine local"
        )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # PySpark raises its own runtime errors when the JVM cannot start
        raise MissingResourceError(
            f"--engine spark: Spark could not start ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check Java 17+ and JAVA_HOME, "
            "or use --engine local"
        ) from None
    session.sparkContext.setLogLevel(os.environ.get("JANUS_SPARK_LOG_LEVEL", "ERROR"))
    return session


def _mapper(config: Any, stems: dict[int, str]):
    """The mapInArrow function: label each batch exactly as the local engine does."""

    def run(batches):
        import pyarrow.compute as pc

        from janus_build import schemas
        from janus_build.match.engine import (
            ShardStats,
            _output_schema,
            _renamed_collisions,
            build_matcher,
            check_columns,
            match_table_batch,
        )

        matcher = build_matcher(config)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            shards = table.column(_SHARD).combine_chunks()
            rows = table.column(_ROW).combine_chunks()
            data = table.drop_columns([_SHARD, _ROW])
            for shard in pc.unique(shards).to_pylist():
                part = data.filter(pc.equal(shards, shard)).combine_chunks()
                part_rows = rows.filter(pc.equal(shards, shard))
                schema = part.schema
                text_cols = check_columns(Path(stems[shard]), schema, config)
                renames = _renamed_collisions(schema, stems[shard])
                has_key = schemas.KEY in schema.names
                in_schema = pa.schema([f.with_name(renames.get(f.name, f.name)) for f in schema])
                out_schema = _output_schema(in_schema, add_key=not has_key)
                keys = (
                    None
                    if has_key
                    else pc.binary_join_element_wise(pa.scalar(stems[shard]), part_rows.cast(pa.string()), "-")
                )
                for sub in part.to_batches():
                    n = sub.num_rows
                    sub_keys = keys.slice(0, n) if keys is not None else None
                    if keys is not None:
                        keys = keys.slice(n)
                    out, reasons = match_table_batch(
                        sub, matcher, config, text_cols, ShardStats(), sub_keys, renames, out_schema
                    )
                    truth = (
                        pc.fill_null(out.column(config.truth_col).cast(pa.int64()), -1)
                        if config.truth_col
                        else pa.nulls(n, pa.int64())
                    )
                    extra = [
                        pa.array([shard] * n, pa.int32()),
                        part_rows.slice(0, n),
                        pa.array(reasons, pa.int8()),
                        truth,
                    ]
                    part_rows = part_rows.slice(n)
                    yield pa.RecordBatch.from_arrays(
                        list(out.columns) + extra, names=out.schema.names + [_SHARD, _ROW, _REASON, _TRUTH]
                    )

    return run


def run_spark(todo: list[Any], stage: StageDir, config: Any, progress: Progress, bad: list[dict[str, str]]) -> None:
    """Label the ``todo`` shards on Spark and move the results into ``stage``."""
    if not todo:
        return
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from janus_build.match.engine import (
        REASON_EMPTY,
        REASON_NON_TEXT,
        REASON_TOO_LONG,
        ShardStats,
        _output_schema,
        _renamed_collisions,
        check_columns,
        open_parquet,
    )

    spark = spark_session(config.workers)
    groups: dict[str, list[Any]] = {}
    schemas_by_group: dict[str, pa.Schema] = {}
    for task in todo:
        try:
            schema = open_parquet(Path(task.path)).schema_arrow
            check_columns(Path(task.path), schema, config)
        except InputError as exc:
            if not config.skip_bad_inputs:
                raise
            bad.append({"path": task.path, "error": str(exc)})
            continue
        signature = schema.remove_metadata().to_string()
        groups.setdefault(signature, []).append(task)
        schemas_by_group[signature] = schema
    work = stage.path / "_spark"
    for signature, tasks in groups.items():
        schema = schemas_by_group[signature]
        renames = _renamed_collisions(schema, tasks[0].path)
        in_schema = pa.schema([f.with_name(renames.get(f.name, f.name)) for f in schema])
        from janus_build import schemas as contract

        out_schema = _output_schema(in_schema, add_key=contract.KEY not in schema.names)
        full = pa.schema(
            list(out_schema)
            + [
                pa.field(_SHARD, pa.int32()),
                pa.field(_ROW, pa.int64()),
                pa.field(_REASON, pa.int8()),
                pa.field(_TRUTH, pa.int64()),
            ]
        )
        index_of = {os.fspath(Path(t.path).resolve()): t.index for t in tasks}
        stems = {t.index: t.stem for t in tasks}
        frame = spark.read.parquet(*[t.path for t in tasks]).select(
            "*", F.col("_metadata.file_path").alias("__path"), F.col("_metadata.row_index").alias(_ROW)
        )
        # file_path is a URI (file:/a/b%20c.parquet): compare it as a plain, decoded path
        frame = frame.withColumn("__path", F.expr("url_decode(regexp_replace(__path, '^file:(//)?', ''))"))
        mapping = spark.createDataFrame(list(index_of.items()), f"__path string, {_SHARD} int")
        frame = frame.join(F.broadcast(mapping), "__path").drop("__path")
        frame = frame.select([c for c in schema.names] + [_SHARD, _ROW])
        mapped = frame.mapInArrow(_mapper(config, stems), from_arrow_schema(full)).persist()
        try:
            counts = mapped.groupBy(_SHARD, "label", _TRUTH, _REASON).count().collect()
            (
                mapped.repartition(len(tasks), _SHARD)
                .sortWithinPartitions(_SHARD, _ROW)
                .drop(_ROW, _REASON, _TRUTH)
                .write.mode("overwrite")
                .partitionBy(_SHARD)
                .parquet(os.fspath(work))
            )
        finally:
            mapped.unpersist()
        per_shard: dict[int, ShardStats] = {t.index: ShardStats(input=t.path) for t in tasks}
        for row in counts:
            stats = per_shard[row[_SHARD]]
            n, label, truth, reason = row["count"], row["label"], row[_TRUTH], row[_REASON]
            stats.rows += n
            if label >= 0:
                stats.labelled += n
                stats.per_class[label] += n
            stats.empty += n if reason == REASON_EMPTY else 0
            stats.non_text += n if reason == REASON_NON_TEXT else 0
            stats.too_long += n if reason == REASON_TOO_LONG else 0
            if config.truth_col:
                if truth is None or truth < 0:
                    stats.truth_missing += n
                else:
                    stats.truth_per_class[truth] += n
                    if label == truth:
                        stats.correct += n
                        stats.correct_per_class[label] += n
        for task in tasks:
            name = shard_name(task.index)
            parts = (
                sorted((work / f"{_SHARD}={task.index}").glob("part-*.parquet"))
                if (work / f"{_SHARD}={task.index}").is_dir()
                else []
            )
            target = stage.path / f"{name}.parquet"
            if not parts:  # an empty input file: Spark writes nothing for it
                _write_empty(out_schema, target)
            elif len(parts) == 1:
                os.replace(parts[0], target)
            else:  # pragma: no cover - repartition by shard gives one part per shard
                raise RuntimeError(f"Spark wrote {len(parts)} parts for shard {name}")
            result = per_shard[task.index].to_json()
            result.update(shard=name, output=f"{name}.parquet", engine="spark")
            stage.mark_done(name, result)
            progress.advance("match", per_shard[task.index].rows)
        shutil.rmtree(work, ignore_errors=True)


def _write_empty(schema: pa.Schema, target: Path) -> None:
    from janus_build.core.fsio import write_parquet_atomic

    write_parquet_atomic(target, schema.empty_table())
