"""The tagging web API (Starlette TestClient) and the ``janus tag`` commands."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient
from tag_fixtures import XSS_TITLE, key, known_decision, make_match_output, make_stage
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.errors import ConfigError
from janus_build.synthetic import class_image
from janus_build.tag import open_queue
from janus_build.tag.server import ServeConfig, check_host, create_app

WHO = {"annotator": "alice", "client": "tab-1"}


@pytest.fixture()
def stage(tmp_path):
    return make_stage(tmp_path / "fetch", {1: 6, 291: 4})


@pytest.fixture()
def client(stage, tmp_path):
    refs = tmp_path / "refs"
    (refs / "291").mkdir(parents=True)
    (refs / "291" / "a.jpg").write_bytes(class_image(291, 99, 20))
    (refs / "notaclass").mkdir()
    queue = open_queue(stage, overlap=0.0)
    with TestClient(create_app(queue, ServeConfig(stage_dir=stage, references=refs, annotator="alice"))) as c:
        yield c
    queue.close()


def test_next_decide_undo_recent_progress(client):
    config = client.get("/api/config").json()
    assert [c["class_id"] for c in config["classes"]] == [1, 291] and config["classes"][1]["name"] == "lion"
    items = client.get("/api/next", params={"class_id": 1, "n": 3, **WHO}).json()["items"]
    assert [i["key"] for i in items] == [key(1, 0), key(1, 1), key(1, 2)]
    assert items[0]["title"] == XSS_TITLE  # data stays data; the page sets it with textContent
    other = client.get("/api/next", params={"class_id": 1, "n": 3, "annotator": "alice", "client": "tab-2"}).json()[
        "items"
    ]
    assert not {i["key"] for i in items} & {i["key"] for i in other}
    saved = client.post("/api/decide", json={"key": key(1, 0), "decision": "in", **WHO}).json()["saved"]
    assert saved[0]["action"] == "decide"
    client.post(
        "/api/decide_batch",
        json={"decisions": [{"key": key(1, 1), "decision": "out"}, {"key": key(1, 2), "decision": "unsure"}], **WHO},
    )
    progress = client.get("/api/progress", params={"class_id": 1, "annotator": "alice"}).json()
    assert (progress["done"], progress["remaining"], progress["in"], progress["out"], progress["unsure"]) == (
        3,
        3,
        1,
        1,
        1,
    )
    assert progress["in_rate"] == pytest.approx(1 / 3, abs=1e-3) and progress["decisions_per_minute"] is not None
    recent = client.get("/api/recent", params={"class_id": 1, "annotator": "alice"}).json()["recent"]
    assert {r["key"]: r["decision"] for r in recent} == {key(1, 0): "in", key(1, 1): "out", key(1, 2): "unsure"}
    undone = client.post("/api/undo", json=WHO).json()["items"]
    assert [i["key"] for i in undone] == [key(1, 1), key(1, 2)]
    assert client.get("/api/progress", params={"class_id": 1}).json()["done"] == 1
    client.post("/api/decide", json={"key": key(1, 0), "decision": "out", **WHO})  # edit from the strip
    stats = client.get("/api/stats").json()
    row = next(r for r in stats["classes"] if r["class_id"] == 1)
    assert (row["good"], row["total"], row["available"]) == (0, 1, 67)


def test_images_are_served_by_key_only(client):
    response = client.get(f"/img/{key(291, 2)}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content == class_image(291, 2, 16)
    assert "immutable" in response.headers["cache-control"]
    for bad in (
        "/img/flickr-nope",
        "/img/..%2F..%2Fetc%2Fpasswd",
        "/img/flickr-failed0x0",
        "/ref/291/1",
        "/ref/291/-1",
    ):
        assert client.get(bad).status_code == 404, bad
    assert client.get("/img/../../etc/passwd").status_code == 404


def test_references_from_directory_then_first_in_class(client):
    refs = client.get("/api/references", params={"class_id": 291}).json()
    assert refs == {"source": "references", "images": ["/ref/291/0"]}
    assert client.get("/ref/291/0").content == class_image(291, 99, 20)
    assert client.get("/api/references", params={"class_id": 1}).json()["images"] == []
    client.post("/api/decide", json={"key": key(1, 3), "decision": "in", **WHO})
    client.post("/api/decide", json={"key": key(1, 4), "decision": "out", **WHO})
    refs = client.get("/api/references", params={"class_id": 1}).json()
    assert refs == {"source": "first-in-class", "images": [f"/img/{key(1, 3)}"]}


def test_bad_requests_are_refused_with_reasons(client):
    assert client.post("/api/decide", content='{"key": "x"}', headers={"content-type": "text/plain"}).status_code == 415
    r = client.post("/api/decide", json={"key": key(1, 0), "decision": "maybe", **WHO})
    assert r.status_code == 400 and "maybe" in r.json()["error"]
    assert client.post("/api/decide", json={"key": "flickr-nope", "decision": "in", **WHO}).status_code == 404
    assert client.post("/api/decide", json={"key": key(1, 0), "decision": "in"}).status_code == 400  # no client id
    assert client.get("/api/next", params={"class_id": "one", **WHO}).status_code == 400
    assert client.get("/api/config", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert (
        ".innerHTML" not in client.get("/static/app.js").text
        and "insertAdjacentHTML" not in client.get("/static/app.js").text
    )


def test_host_must_be_loopback_unless_allowed():
    check_host("127.0.0.1", False)
    check_host("0.0.0.0", True)
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_host("0.0.0.0", False)


def test_cli_stats_export_audit_and_remote_refusal(stage, tmp_path):
    runner = CliRunner()
    with open_queue(stage) as queue:
        for j in range(6):
            queue.decide(key(1, j), known_decision(key(1, j)), "alice")
    result = runner.invoke(app, ["tag", "stats", str(stage), "--json", str(tmp_path / "stats.json")])
    assert result.exit_code == 0, result.output
    assert "Table 8" in result.output and "lion" in result.output
    good = sum(known_decision(key(1, j)) == "in" for j in range(6))
    import json

    figures = json.loads((tmp_path / "stats.json").read_text())
    assert figures["classes"][0]["good"] == good and figures["classes"][0]["total"] == 6
    result = runner.invoke(app, ["tag", "export", str(stage), "--out", str(tmp_path / "tags.parquet")])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "tags.parquet").num_rows == 6
    result = runner.invoke(app, ["tag", "serve", str(stage), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "--allow-remote" in str(result.exception)
    match = make_match_output(tmp_path / "match", {5: 4})
    result = runner.invoke(app, ["tag", "audit", str(match), "--per-class", "3", "--no-serve"])
    assert result.exit_code == 0 and "3 row(s) in 1 class(es)" in result.output
    result = runner.invoke(app, ["tag", "stats", str(match)])
    assert result.exit_code == 0 and "label precision" in result.output


def test_malformed_numbers_busy_port_and_directory_export_are_one_line_errors(client, stage, tmp_path):
    import socket

    from janus_build.errors import OutputError
    from janus_build.tag.server import check_port
    from janus_build.tag.stats import export_tags

    for path, params in (
        ("/api/next", {"class_id": 1, "n": "many", **WHO}),
        ("/api/recent", {"class_id": "x"}),
        ("/api/recent", {"n": "all"}),
    ):
        response = client.get(path, params=params)
        assert response.status_code == 400 and "expected an integer" in response.json()["error"], (path, params)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            check_port("127.0.0.1", busy.getsockname()[1])
    with open_queue(stage) as queue, pytest.raises(OutputError, match="is a directory"):
        export_tags(queue, tmp_path)
