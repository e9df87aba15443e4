"""janus match reads and writes s3:// through a real S3 API on loopback (moto in server mode)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.errors import InputError, OutputError
from janus_build.match import MatchConfig, run_match

pytest.importorskip("moto.server")
pytest.importorskip("flask")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3(s3_endpoint, monkeypatch, request):
    """A fresh bucket; the AWS variables a user would set, with the endpoint override."""
    from pyarrow import fs

    from janus_build.core import storage

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    storage._filesystem.cache_clear()
    bucket = request.node.name.replace("_", "-").lower()[:50]
    handle = fs.S3FileSystem(
        endpoint_override=s3_endpoint.split("//")[1], scheme="http", region="us-east-1", allow_bucket_creation=True
    )
    handle.create_dir(bucket)
    yield handle, bucket
    storage._filesystem.cache_clear()


def put_parquet(handle, path: str, table: pa.Table) -> None:
    with handle.open_output_stream(path) as sink:
        pq.write_table(table, sink)


def read_parquet(handle, path: str) -> pa.Table:
    with handle.open_input_file(path) as source:
        return pq.read_table(source)


def test_s3_inputs_and_outputs_equal_local(s3, tmp_path):
    handle, bucket = s3
    for sub in ("2B-en", "2B-multi"):
        table = pa.table({"TEXT": ["a goose", "a lion", "nothing"], "truth": pa.array([99, 8, 1], pa.int32())})
        put_parquet(handle, f"{bucket}/laion/{sub}/part-00000.parquet", table)
        (tmp_path / "laion" / sub).mkdir(parents=True)
        pq.write_table(table, tmp_path / "laion" / sub / "part-00000.parquet")
    remote = run_match(
        MatchConfig(inputs=(f"s3://{bucket}/laion/",), out=f"s3://{bucket}/out", truth_col="truth", plot=True)
    )
    local = run_match(MatchConfig(inputs=(str(tmp_path / "laion"),), out=str(tmp_path / "out"), truth_col="truth"))
    assert {k: v for k, v in remote.items() if k != "skipped_inputs"} == {
        k: v for k, v in local.items() if k != "skipped_inputs"
    }
    # the two small inputs are packed into one shard, on S3 as locally
    assert read_parquet(handle, f"{bucket}/out/00000.parquet").equals(pq.read_table(tmp_path / "out" / "00000.parquet"))
    names = sorted(i.path.split("/out/")[1] for i in handle.get_file_info(_selector(f"{bucket}/out")))
    assert names == sorted(
        ["00000.parquet", "_manifest.json", "_per_class_accuracy.png", "_stats.json", "_stats", "_stats/00000.json"]
    )
    marker = json.loads(handle.open_input_stream(f"{bucket}/out/_stats/00000.json").read())
    assert [f["path"].split("/laion/")[1] for f in marker["input_fingerprint"]["inputs"]] == [
        "2B-en/part-00000.parquet",
        "2B-multi/part-00000.parquet",
    ]
    manifest = json.loads(handle.open_input_stream(f"{bucket}/out/_manifest.json").read())
    assert manifest["completed"] is True and manifest["inputs"][0]["path"].startswith(f"s3://{bucket}/laion/")
    # the output prefix opens as a parquet dataset as-is
    import pyarrow.dataset as ds

    assert ds.dataset(f"{bucket}/out", filesystem=handle, format="parquet").to_table().num_rows == 6


def _selector(path: str):
    from pyarrow import fs

    return fs.FileSelector(path, recursive=True)


def test_s3_resume_and_changed_input(s3):
    handle, bucket = s3
    put_parquet(handle, f"{bucket}/in/a.parquet", pa.table({"TEXT": ["a goose"]}))
    put_parquet(handle, f"{bucket}/in/b.parquet", pa.table({"TEXT": ["a lion"]}))
    config = MatchConfig(inputs=(f"s3://{bucket}/in/*.parquet",), out=f"s3://{bucket}/o", pack_rows=0)
    run_match(config)
    handle.delete_file(f"{bucket}/o/_stats/00001.json")  # as if killed before shard 1's marker
    time.sleep(1.1)  # S3 modification times have a resolution of one second
    put_parquet(handle, f"{bucket}/in/a.parquet", pa.table({"TEXT": ["a koala", "a goose"]}))
    stats = run_match(config)
    assert stats["rows"] == 3 and stats["per_class"] == {"99": 1, "105": 1, "291": 1}
    with pytest.raises(OutputError, match="strategy: was 'sc', now 'mc'"):
        run_match(MatchConfig(inputs=config.inputs, out=config.out, pack_rows=0, strategy="mc"))


def test_s3_missing_input_is_one_line(s3):
    _, bucket = s3
    with pytest.raises(InputError, match=rf"INPUT s3://{bucket}/nothing/: no such file"):
        run_match(MatchConfig(inputs=(f"s3://{bucket}/nothing/",), out=f"s3://{bucket}/o"))


@pytest.mark.spark
def test_s3_with_the_spark_engine(s3):
    pytest.importorskip("pyspark")
    handle, bucket = s3
    put_parquet(handle, f"{bucket}/in/laion+part1.parquet", pa.table({"TEXT": ["a goose", "a lion", "x"]}))
    put_parquet(handle, f"{bucket}/in/b c.parquet", pa.table({"TEXT": ["a koala"]}))
    common = dict(inputs=(f"s3://{bucket}/in/",), pack_rows=0)
    spark = run_match(MatchConfig(out=f"s3://{bucket}/spark", engine="spark", workers=2, **common))
    local = run_match(MatchConfig(out=f"s3://{bucket}/local", **common))
    assert spark == local and spark["rows"] == 4
    for name in ("00000", "00001"):
        assert read_parquet(handle, f"{bucket}/spark/{name}.parquet").equals(
            read_parquet(handle, f"{bucket}/local/{name}.parquet")
        )
