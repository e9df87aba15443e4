"""The tagging web app: Starlette routes over a :class:`~janus_build.tag.db.TagQueue`, run by uvicorn.

Images are served by key from the shards (offset and size from the index, never a path from the
request); reference photos by class id and position in a listing made at start-up. Every
decision is committed to SQLite before its response is sent. Pages get a strict
Content-Security-Policy, and POSTs must be JSON (a cross-site form cannot post one).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from janus_build.errors import ConfigError, InputError, JanusError
from janus_build.tag.db import Decision, Item, TagQueue

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
REFERENCE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ServeConfig:
    """Options of ``janus tag serve`` (one to one with the CLI)."""

    stage_dir: Path
    references: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    annotator: str = field(default_factory=lambda: os.environ.get("USER") or "annotator")
    db: Path | None = None
    overlap: float | None = None  # None: keep the queue's (0.05 for a new queue)
    lease_seconds: float = 120.0
    prefetch: int = 8
    grid_size: int = 5
    references_per_class: int = 6
    class_col: str = "class_id"
    allow_remote: bool = False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless ``--allow-remote`` was given."""
    if host not in LOOPBACK and not allow_remote:
        raise ConfigError(
            f"--host {host}: not a loopback address; the page has no login, so pass --allow-remote "
            "to serve it to other machines on purpose"
        )


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be listened on (a port in use, a foreign address)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def scan_references(directory: Path | None) -> dict[int, list[Path]]:
    """``DIR/<class_id>/*.{jpg,png,webp,...}`` sorted by name -> {class_id: [files]}."""
    if directory is None:
        return {}
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"--references {directory}: no such directory (expected DIR/<class_id>/*.jpg)")
    out: dict[int, list[Path]] = {}
    for child in sorted(directory.iterdir()):
        if not child.is_dir():
            continue
        try:
            class_id = int(child.name)
        except ValueError:
            log.warning("--references: skipping %s (folder names must be class ids, e.g. 291)", child)
            continue
        files = sorted(p for p in child.iterdir() if p.is_file() and p.suffix.lower() in REFERENCE_EXTENSIONS)
        if files:
            out[class_id] = files
    if not out:
        log.warning("--references %s: no DIR/<class_id>/*.jpg files found; using the first in-class images", directory)
    return out


def _safe_url(url: str | None) -> str | None:
    if url and (url.startswith("https://") or url.startswith("http://")):
        return url
    return None


def create_app(queue: TagQueue, config: ServeConfig) -> Any:
    """Build the Starlette application (the caller owns ``queue`` and closes it)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from janus_build.core.shards import read_image
    from janus_build.tag.stats import class_names, compute_stats

    meta = queue.meta()
    mode = meta.get("mode", "tag")
    images_dir = Path(meta["images_dir"]) if meta.get("images_dir") else None
    references = scan_references(config.references)
    class_ids = queue.classes()
    names = class_names(class_ids, config.stage_dir)

    def image_url(item: Item) -> str | None:
        if item.image_offset is not None and images_dir is not None:
            return f"/img/{quote(item.key, safe='')}"
        return _safe_url(item.url)

    def item_json(item: Item) -> dict[str, Any]:
        data = item.public()
        data["image"] = image_url(item)
        data["url"] = _safe_url(item.url)
        return data

    async def body(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise InputError("POST bodies must be application/json")
        try:
            data = await request.json()
        except ValueError:
            raise InputError("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise InputError("the request body must be a JSON object")
        return data

    def who(data: Any) -> tuple[str, str]:
        annotator = str(data.get("annotator") or config.annotator)
        client = str(data.get("client") or "")
        if not client:
            raise InputError("missing 'client' (the tab id)")
        return annotator, client

    def int_param(value: Any, name: str = "class_id") -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"{name} {value!r}: expected an integer") from None

    class_param = int_param

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_config(request: Request) -> Response:
        return JSONResponse(
            {
                "mode": mode,
                "annotator": config.annotator,
                "prefetch": config.prefetch,
                "grid_size": config.grid_size,
                "references_per_class": config.references_per_class,
                "classes": [{"class_id": c, "name": names.get(c, "")} for c in class_ids],
            }
        )

    def api_next(request: Request) -> Response:
        p = request.query_params
        annotator, client = who(p)
        items = queue.next_items(
            class_param(p.get("class_id")), client, annotator, int_param(p.get("n", config.prefetch), "n")
        )
        return JSONResponse({"items": [item_json(i) for i in items]})

    async def api_decide(request: Request) -> Response:
        data = await body(request)
        annotator, client = who(data)
        results = await _threadpool(
            queue.decide, str(data.get("key", "")), str(data.get("decision", "")), annotator, client
        )
        return JSONResponse({"saved": [results]})

    async def api_decide_batch(request: Request) -> Response:
        data = await body(request)
        annotator, client = who(data)
        raw = data.get("decisions")
        if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
            raise InputError("'decisions' must be a list of {key, decision} objects")
        decisions = [Decision(str(d.get("key", "")), str(d.get("decision", ""))) for d in raw]
        results = await _threadpool(queue.decide_many, decisions, annotator, client)
        return JSONResponse({"saved": results})

    async def api_undo(request: Request) -> Response:
        data = await body(request)
        annotator, client = who(data)
        items = await _threadpool(queue.undo, client, annotator)
        return JSONResponse({"items": [item_json(i) for i in items]})

    async def api_release(request: Request) -> Response:
        data = await body(request)
        _, client = who(data)
        keys = data.get("keys")
        class_id = class_param(data["class_id"]) if data.get("class_id") is not None else None
        await _threadpool(queue.release, client, class_id, [str(k) for k in keys] if isinstance(keys, list) else None)
        return JSONResponse({"released": True})

    def api_recent(request: Request) -> Response:
        p = request.query_params
        annotator = p.get("annotator") or config.annotator
        class_id = class_param(p["class_id"]) if p.get("class_id") else None
        rows = queue.recent(annotator, class_id, min(int_param(p.get("n", 12), "n"), 100))
        for r in rows:
            item = queue.item(r["key"])
            r["image"] = image_url(item) if item else None
            r["title"] = item.title if item else ""
        return JSONResponse({"recent": rows})

    def api_progress(request: Request) -> Response:
        p = request.query_params
        return JSONResponse(queue.progress(class_param(p.get("class_id")), p.get("annotator") or config.annotator))

    def api_stats(request: Request) -> Response:
        return JSONResponse(compute_stats(queue, config.stage_dir))

    def api_references(request: Request) -> Response:
        class_id = class_param(request.query_params.get("class_id"))
        files = references.get(class_id, [])[: config.references_per_class]
        if files:
            return JSONResponse({"source": "references", "images": [f"/ref/{class_id}/{i}" for i in range(len(files))]})
        urls = []
        for key in queue.first_in_keys(class_id, config.references_per_class):
            item = queue.item(key)
            if item is not None and (url := image_url(item)):
                urls.append(url)
        return JSONResponse({"source": "first-in-class", "images": urls})

    def image(request: Request) -> Response:
        item = queue.item(request.path_params["key"])
        if item is None or item.image_offset is None or images_dir is None or item.shard is None:
            return JSONResponse({"error": "no such image"}, status_code=404)
        data = read_image(images_dir, item.shard, item.image_offset, item.image_size or 0)
        media = MEDIA_TYPES.get((item.image_ext or "jpg").lower(), "application/octet-stream")
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=86400, immutable"})

    def reference(request: Request) -> Response:
        files = references.get(request.path_params["class_id"], [])
        index = request.path_params["index"]
        if not 0 <= index < len(files):
            return JSONResponse({"error": "no such reference image"}, status_code=404)
        path = files[index]
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(path.suffix.lower().lstrip("."), "application/octet-stream"),
            headers={"Cache-Control": "private, max-age=3600"},
        )

    async def janus_error(request: Request, exc: Exception) -> Response:
        status = 404 if "not in the queue" in str(exc) else 400
        if "application/json" in str(exc):
            status = 415
        return JSONResponse({"error": str(exc)}, status_code=status)

    routes = [
        Route("/", index),
        Route("/api/config", api_config),
        Route("/api/next", api_next),
        Route("/api/decide", api_decide, methods=["POST"]),
        Route("/api/decide_batch", api_decide_batch, methods=["POST"]),
        Route("/api/undo", api_undo, methods=["POST"]),
        Route("/api/release", api_release, methods=["POST"]),
        Route("/api/recent", api_recent),
        Route("/api/progress", api_progress),
        Route("/api/stats", api_stats),
        Route("/api/references", api_references),
        Route("/img/{key:str}", image),
        Route("/ref/{class_id:int}/{index:int}", reference),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    allowed_hosts = ["127.0.0.1", "localhost", "[::1]", "testserver"]
    if config.host not in LOOPBACK:
        allowed_hosts = ["*"]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)],
        exception_handlers={JanusError: janus_error},
    )
    return _ResponseHeaders(app)


class _ResponseHeaders:
    """Pure ASGI middleware on every response: CSP, no sniffing, no referrer leaks to image hosts,
    and ``Server-Timing: app;dur=<ms>`` (read by the benchmark)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def add_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"server-timing", f"app;dur={ms:.3f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)


async def _threadpool(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


def open_for_serving(config: ServeConfig) -> TagQueue:
    """Open the queue named by a serve config (a stage's queue, or an existing audit queue)."""
    from janus_build.tag.db import open_queue

    return open_queue(
        config.stage_dir,
        config.db,
        overlap=config.overlap,
        lease_seconds=config.lease_seconds,
        class_col=config.class_col,
    )


def run(queue: TagQueue, config: ServeConfig) -> None:
    """Serve until interrupted (uvicorn; one worker process, the SQLite file is the state)."""
    import uvicorn

    check_host(config.host, config.allow_remote)
    check_port(config.host, config.port)
    app = create_app(queue, config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
