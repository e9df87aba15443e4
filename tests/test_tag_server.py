"""The tagging web API (Starlette TestClient) and the ``janus tag`` commands."""

from __future__ import annotations

import json
import socket

import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient
from tag_fixtures import XSS_TITLE, key, known_decision, make_match_output, make_stage
from typer.testing import CliRunner

from janus_build.cli import app
from janus_build.demo.images import class_image
from janus_build.errors import ConfigError
from janus_build.tag import open_queue
from janus_build.tag.server import ServeConfig, check_host, create_app

WHO = {"annotator": "alice", "client": "tab-1"}
BASE = "http://127.0.0.1:8765"


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
    app = create_app(queue, ServeConfig(stage_dir=stage, references=refs, annotator="alice"))
    with TestClient(app, base_url=BASE) as c:
        yield c
    queue.close()


def test_next_decide_undo_recent_progress(client):
    config = client.get("/api/config").json()
    assert [c["class_id"] for c in config["classes"]] == [1, 291] and config["classes"][1]["name"] == "lion"
    items = client.post("/api/next", json={"class_id": 1, "n": 3, **WHO}).json()["items"]
    assert [i["key"] for i in items] == [key(1, 0), key(1, 1), key(1, 2)]
    assert items[0]["title"] == XSS_TITLE  # data stays data; the page sets it with textContent
    # a javascript: link from the data is dropped (the page is linked from the owner and photo id)
    assert items[0]["credit"]["page_url"] == "https://www.flickr.com/photos/12345678@N00/10"
    assert items[1]["credit"] == {
        "owner": "Owner 1",
        "license": "CC BY 2.0",
        "license_url": "https://creativecommons.org/licenses/by/2.0/",
        "page_url": "https://www.flickr.com/photos/12345678@N00/11",
    }
    assert items[0]["credit"]["owner"] == "Owner 0"  # owner_name (display name) before the NSID
    other = client.post("/api/next", json={"class_id": 1, "n": 3, "annotator": "alice", "client": "tab-2"}).json()[
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
    assert (progress["done"], progress["remaining"], progress["awaiting_second"]) == (3, 3, 0)
    assert (progress["in"], progress["out"], progress["unsure"]) == (1, 1, 1)
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


def test_references_from_directory_then_only_images_two_annotators_confirmed(client, stage):
    refs = client.get("/api/references", params={"class_id": 291}).json()
    assert refs == {"source": "references", "images": ["/ref/291/0"]}
    assert client.get("/ref/291/0").content == class_image(291, 99, 20)
    assert client.get("/api/references", params={"class_id": 1}).json()["images"] == []
    client.post("/api/decide", json={"key": key(1, 3), "decision": "in", **WHO})
    client.post("/api/decide", json={"key": key(1, 4), "decision": "in", **WHO})
    # one annotator's "in" (perhaps a slip) never becomes a reference ...
    assert client.get("/api/references", params={"class_id": 1}).json() == {"source": "confirmed", "images": []}
    bob = {"annotator": "bob", "client": "tab-bob"}
    client.post("/api/decide", json={"key": key(1, 3), "decision": "in", **bob})
    client.post("/api/decide", json={"key": key(1, 4), "decision": "out", **bob})
    # ... a second annotator's agreement does; a disagreement does not
    refs = client.get("/api/references", params={"class_id": 1}).json()
    assert refs == {"source": "confirmed", "images": [f"/img/{key(1, 3)}"]}


def test_bad_requests_are_refused_with_reasons(client):
    assert client.post("/api/decide", content='{"key": "x"}', headers={"content-type": "text/plain"}).status_code == 415
    r = client.post("/api/decide", json={"key": key(1, 0), "decision": "maybe", **WHO})
    assert r.status_code == 400 and r.json()["error"] == "decision: expected one of in, out, unsure"
    assert client.post("/api/decide", json={"key": "flickr-nope", "decision": "in", **WHO}).status_code == 404
    assert client.post("/api/decide", json={"key": key(1, 0), "decision": "in"}).status_code == 400  # no client id
    assert client.post("/api/next", json={"class_id": "one", **WHO}).status_code == 400
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
    from janus_build.errors import OutputError
    from janus_build.tag.server import check_port
    from janus_build.tag.stats import export_tags

    for path, params in (
        ("/api/progress", {"class_id": 1.5}),
        ("/api/recent", {"class_id": "x"}),
        ("/api/recent", {"n": "all"}),
    ):
        response = client.get(path, params=params)
        assert response.status_code == 400 and "expected an integer" in response.json()["error"], (path, params)
    with pytest.raises(ConfigError, match="--port 99999: expected a TCP port"):
        check_port("127.0.0.1", 99999)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            check_port("127.0.0.1", busy.getsockname()[1])
    with open_queue(stage) as queue, pytest.raises(OutputError, match="is a directory"):
        export_tags(queue, tmp_path)


def test_leasing_is_a_post_and_a_get_changes_nothing(client):
    assert client.get("/api/next", params={"class_id": 1, "n": 3, **WHO}).status_code == 405
    # nothing was leased to tab-1: another tab gets the class's first items
    items = client.post("/api/next", json={"class_id": 1, "n": 2, "annotator": "bob", "client": "tab-2"}).json()
    assert [i["key"] for i in items["items"]] == [key(1, 0), key(1, 1)]


def test_cross_origin_requests_and_rebinding_hosts_are_refused(client, stage):
    decide = {"key": key(1, 0), "decision": "in", **WHO}
    for headers in (
        {"origin": "http://evil.example"},  # CSRF from any page the annotator opens
        {"origin": "null"},  # a sandboxed frame or a data: page
        {"origin": "http://127.0.0.1:9999"},  # another local app
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"host": "evil.example:8765"},  # DNS rebinding: evil.example resolved to 127.0.0.1
        {"host": "evil.example:8765", "origin": "http://evil.example:8765"},
        {"host": "127.0.0.1.evil.example"},
        {"host": ""},
    ):
        response = client.post("/api/decide", json=decide, headers=headers)
        assert response.status_code == 403, headers
        assert client.get("/api/config", headers=headers).status_code == 403, headers
        assert client.get(f"/img/{key(1, 0)}", headers=headers).status_code == 403, headers
    with open_queue(stage) as queue:
        assert queue.decisions() == []
    for headers in (
        {"origin": BASE},
        {"host": "localhost:9000", "origin": "http://localhost:9000"},  # an ssh -L tunnel changes the port
        {"host": "[::1]:8765", "origin": "http://[::1]:8765"},
        {"sec-fetch-site": "same-origin", "origin": BASE},
        {},  # a script: no Origin, no Sec-Fetch-Site
    ):
        assert client.post("/api/decide", json=decide, headers=headers).status_code == 200, headers
    # a link to the page from elsewhere still opens it (a navigation, nothing else)
    navigate = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    assert client.get("/", headers=navigate).status_code == 200
    assert client.get("/api/config", headers=navigate).status_code == 403


def test_remote_serving_answers_only_to_its_own_names(stage):
    from janus_build.tag.server import allowed_hosts

    config = ServeConfig(stage_dir=stage, host="10.1.2.3", allow_remote=True, allowed_hosts=("Tagbox.lan",))
    assert {"10.1.2.3", "tagbox.lan", "127.0.0.1", "localhost", "::1"} == allowed_hosts(config)
    wildcard = allowed_hosts(ServeConfig(stage_dir=stage, host="0.0.0.0", allow_remote=True))
    assert "0.0.0.0" not in wildcard and socket.gethostname().lower() in wildcard
    with open_queue(stage) as queue, TestClient(create_app(queue, config), base_url="http://10.1.2.3:8765") as c:
        assert c.get("/api/config").status_code == 200
        assert c.get("/api/config", headers={"host": "tagbox.lan"}).status_code == 200
        assert c.get("/api/config", headers={"host": "evil.example"}).status_code == 403


def test_oversized_bodies_are_refused_with_413_and_never_echoed(client):
    big = b'{"key": "' + b"A" * (2 << 20) + b'"}'
    response = client.post("/api/decide", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 200 and b"AAAA" not in response.content
    # just under the limit: parsed, and refused for what it says, without echoing it either
    near = json.dumps({"key": "A" * 1_000_000, "decision": "in", **WHO})
    response = client.post("/api/decide", content=near, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "key: longer than 512 characters"


def _asgi_post(app, headers, chunks):
    """Drive an ASGI app with a POST whose body comes from ``chunks``; returns (status, body, chunks read)."""
    import asyncio

    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        pulled += 1
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/decide",
        "headers": [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:8765", **headers}.items()],
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), pulled


def test_a_128_mb_body_is_refused_without_being_read(client):
    from janus_build.tag.guard import MAX_BODY, RequestGuard

    reached = []

    async def app(scope, receive, send):  # the routes behind the gate must never see such a body
        reached.append(scope["path"])

    guard = RequestGuard(app, ["127.0.0.1"])
    endless = (b"x" * 65536 for _ in range(2048))  # 128 MiB, chunked (no Content-Length)
    status, body, pulled = _asgi_post(guard, {"transfer-encoding": "chunked"}, endless)
    assert status == 413 and b"xxx" not in body
    assert pulled <= MAX_BODY // 65536 + 1  # stopped at the limit: 17 of the 2,048 chunks
    status, _, pulled = _asgi_post(guard, {"content-length": str(128 << 20)}, iter([b"x" * 65536]))
    assert (status, pulled) == (413, 0)  # refused on the header alone
    status, _, _ = _asgi_post(guard, {"content-length": "lots"}, iter([]))
    assert status == 400 and reached == []


def test_a_real_server_answers_413_before_the_body_is_sent(stage):
    import threading

    import uvicorn

    with open_queue(stage) as queue, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = ServeConfig(stage_dir=stage, port=port)
        server = uvicorn.Server(
            uvicorn.Config(create_app(queue, config), host="127.0.0.1", port=port, log_level="error")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            for _ in range(1200):  # up to a minute on a loaded machine
                if server.started:
                    break
                threading.Event().wait(0.05)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(
                    f"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {128 << 20}\r\n\r\n".encode()
                )  # the headers alone: the answer must come without waiting for the 128 MB
                reply = conn.recv(65536)
            assert reply.startswith(b"HTTP/1.1 413")
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/next", {"class_id": 10**20, **WHO}, "class_id"),
        ("/api/next", {"class_id": -1, **WHO}, "class_id"),
        ("/api/next", {"class_id": 1.5, **WHO}, "class_id"),
        ("/api/next", {"class_id": True, **WHO}, "class_id"),
        ("/api/next", {"class_id": {"$gt": 1}, **WHO}, "class_id"),
        ("/api/next", {"class_id": 1, "n": 10**20, **WHO}, "n"),
        ("/api/next", {"class_id": 1, "n": 0, **WHO}, "n"),
        ("/api/next", {"class_id": 1, "annotator": ["alice"], "client": "t"}, "annotator"),
        ("/api/next", {"class_id": 1, "annotator": "alice", "client": {"id": 1}}, "client"),
        ("/api/decide", {"key": {"nested": [1, 2]}, "decision": "in", **WHO}, "key"),
        ("/api/decide", {"key": key(1, 0), "decision": ["in"], **WHO}, "decision"),
        ("/api/decide", {"key": key(1, 0), "decision": "in", "annotator": "a" * 101, "client": "t"}, "annotator"),
        ("/api/decide_batch", {"decisions": {"key": "x"}, **WHO}, "decisions"),
        ("/api/decide_batch", {"decisions": [[key(1, 0), "in"]], **WHO}, "decisions"),
        ("/api/decide_batch", {"decisions": [{"key": key(1, 0), "decision": "in"}] * 1001, **WHO}, "decisions"),
        ("/api/release", {"class_id": 10**20, **WHO}, "class_id"),
        ("/api/release", {"keys": "all", **WHO}, "keys"),
        ("/api/release", {"keys": [{"k": 1}], **WHO}, "keys"),
    ],
)
def test_wrong_types_and_out_of_range_numbers_are_400s_naming_the_field(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 400 and response.json()["error"].startswith(field), response.text


def test_deeply_nested_json_and_huge_query_numbers_are_400s(client):
    deep = "[" * 200_000 + "]" * 200_000
    response = client.post("/api/decide", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "the request body is not valid JSON"
    for path, params in (
        ("/api/progress", {"class_id": str(10**20)}),
        ("/api/references", {"class_id": str(10**20)}),
        ("/api/recent", {"class_id": 1, "n": str(10**20)}),
        ("/api/recent", {"class_id": 1, "annotator": "a" * 101}),
    ):
        assert client.get(path, params=params).status_code == 400, (path, params)


def test_references_never_leave_their_folder(stage, tmp_path):
    refs = tmp_path / "refs"
    outside = tmp_path / "outside"
    (refs / "291").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.jpg").write_bytes(b"secret")
    (refs / "291" / "a.jpg").write_bytes(class_image(291, 1, 20))
    (refs / "291" / "b.jpg").symlink_to("/etc/passwd")
    (refs / "291" / "c.jpg").symlink_to(refs / "291" / "a.jpg")  # a link inside the folder is fine
    (refs / "291" / "d.jpg").symlink_to(outside / "x.jpg")
    (refs / "5").symlink_to(outside, target_is_directory=True)  # a class folder linked from elsewhere
    with open_queue(stage) as queue:
        app = create_app(queue, ServeConfig(stage_dir=stage, references=refs))
        with TestClient(app, base_url=BASE) as c:
            listed = c.get("/api/references", params={"class_id": 291}).json()
            assert listed == {"source": "references", "images": ["/ref/291/0", "/ref/291/1"]}
            assert c.get("/ref/291/1").content == class_image(291, 1, 20)
            for path in ("/ref/291/2", "/ref/291/3", "/ref/5/0"):
                assert c.get(path).status_code == 404, path
            assert c.get("/api/references", params={"class_id": 5}).json()["images"] == []
            # a file swapped for a link to /etc/passwd after start-up is not served either
            (refs / "291" / "a.jpg").unlink()
            (refs / "291" / "a.jpg").symlink_to("/etc/passwd")
            response = c.get("/ref/291/0")
            assert response.status_code == 404 and b"root:" not in response.content


def test_a_queue_without_page_urls_links_the_flickr_page_from_owner_and_photo_id(tmp_path):
    stage = make_stage(tmp_path / "old", {3: 2}, meta=lambda c, j: {"page_url": None, "owner_name": None})
    with open_queue(stage) as queue, TestClient(create_app(queue, ServeConfig(stage_dir=stage)), base_url=BASE) as c:
        items = c.post("/api/next", json={"class_id": 3, "n": 2, **WHO}).json()["items"]
    credit = items[1]["credit"]
    assert credit["page_url"] == "https://www.flickr.com/photos/12345678@N00/31" and credit["owner"] == "12345678@N00"
