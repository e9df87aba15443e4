"""The tagging server's routes: :class:`TagApi` holds the queue and one method per endpoint.

Every request that changes state (leasing included) is a POST with a JSON object body; GETs only
read. Request fields are checked here, before the queue sees them: wrong types, nested values,
out-of-range integers and over-long strings are 400s whose message names the field (never the
value it held, which may be huge), so no request can cause a 500.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from janus_build.errors import InputError
from janus_build.tag.db import DECISIONS, Decision, Item, TagQueue

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
CLASS_ID_MAX = 2**31 - 1  # class ids are int32 in every index (schemas)
MAX_ITEMS = 200  # per /api/next request
MAX_DECISIONS = 1000  # per /api/decide_batch request (a 10 x 10 grid page is 100)
MAX_KEY = 512
MAX_NAME = 100


class ApiError(InputError):
    """A request the API refuses, with its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def integer(value: Any, name: str, low: int, high: int) -> int:
    """An integer field (a JSON number without fraction, or a query string's digits) within bounds."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{name}: expected an integer from {low} to {high}")
    if not low <= value <= high:
        raise ApiError(f"{name}: expected an integer from {low} to {high}")
    return value


def text(value: Any, name: str, max_len: int) -> str:
    """A string field of at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise ApiError(f"{name}: expected a string")
    if len(value) > max_len:
        raise ApiError(f"{name}: longer than {max_len} characters")
    return value


def safe_url(url: Any) -> str | None:
    """``url`` when it is an http(s) URL (never ``javascript:`` and the like), else ``None``."""
    if isinstance(url, str) and (url.startswith("https://") or url.startswith("http://")):
        return url
    return None


def flickr_page(item: Item) -> str | None:
    """The Flickr page of a photo queued without ``page_url`` (a queue built before it was kept)."""
    owner, photo_id = item.info.get("owner"), item.info.get("photo_id")
    flickr = item.info.get("source") == "flickr" or item.key.startswith("flickr-")
    if flickr and owner and photo_id and str(photo_id).isdigit():
        return f"https://www.flickr.com/photos/{quote(str(owner), safe='@')}/{photo_id}"
    return None


async def json_object(request: Any) -> dict[str, Any]:
    """The request's JSON object body (415 for another content type, 400 for anything but an object)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError("POST bodies must be application/json", 415)
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting thousands deep
        raise ApiError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object")
    return data


class TagApi:
    """The endpoints of the tagging page over one queue (the caller owns ``queue`` and closes it).

    Args:
        queue: the tagging queue.
        config: the :class:`~janus_build.tag.server.ServeConfig`.
        references: ``{class_id: [files]}`` from :func:`~janus_build.tag.server.scan_references`.
        references_root: the resolved ``--references`` folder; a file resolving outside it is never served.
    """

    def __init__(self, queue: TagQueue, config: Any, references: dict[int, list[Path]], references_root: Path | None):
        from janus_build.tag.stats import class_names

        self.queue = queue
        self.config = config
        self.references = references
        self.references_root = references_root
        meta = queue.meta()
        self.mode = meta.get("mode", "tag")
        self.images_dir = Path(meta["images_dir"]) if meta.get("images_dir") else None
        self.class_ids = queue.classes()
        self.names = class_names(self.class_ids, config.stage_dir)

    def routes(self) -> list[Any]:
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles

        post = ["POST"]
        return [
            Route("/", self.index),
            Route("/api/config", self.api_config),
            Route("/api/next", self.api_next, methods=post),
            Route("/api/decide", self.api_decide, methods=post),
            Route("/api/decide_batch", self.api_decide_batch, methods=post),
            Route("/api/undo", self.api_undo, methods=post),
            Route("/api/release", self.api_release, methods=post),
            Route("/api/recent", self.api_recent),
            Route("/api/progress", self.api_progress),
            Route("/api/stats", self.api_stats),
            Route("/api/references", self.api_references),
            Route("/img/{key:str}", self.image),
            Route("/ref/{class_id:int}/{index:int}", self.reference),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    # -- request fields ---------------------------------------------------------------------
    def who(self, data: Any) -> tuple[str, str]:
        """``(annotator, client)`` of a request (the annotator defaults to ``--annotator``)."""
        annotator = text(data.get("annotator") or self.config.annotator, "annotator", MAX_NAME)
        client = text(data.get("client") or "", "client", MAX_NAME)
        if not client:
            raise ApiError("missing 'client' (the tab id)")
        return annotator, client

    @staticmethod
    def class_id(value: Any) -> int:
        return integer(value, "class_id", 0, CLASS_ID_MAX)

    @staticmethod
    def decision(entry: Any) -> Decision:
        if not isinstance(entry, dict):
            raise ApiError("decisions: expected a list of {key, decision} objects")
        decision = text(entry.get("decision"), "decision", 10)
        if decision not in DECISIONS:
            raise ApiError(f"decision: expected one of {', '.join(DECISIONS)}")
        return Decision(text(entry.get("key"), "key", MAX_KEY), decision)

    # -- JSON of items ----------------------------------------------------------------------
    def image_url(self, item: Item) -> str | None:
        if item.image_offset is not None and self.images_dir is not None:
            return f"/img/{quote(item.key, safe='')}"
        return safe_url(item.url)

    def item_json(self, item: Item) -> dict[str, Any]:
        data = item.public()
        data["image"] = self.image_url(item)
        data["url"] = safe_url(item.url)
        info = item.info
        data["credit"] = {
            "owner": info.get("owner_name") or info.get("owner") or "",
            "license": info.get("license") or "",
            "license_url": safe_url(info.get("license_url")),
            "page_url": safe_url(info.get("page_url")) or flickr_page(item),
        }
        return data

    # -- pages and reads --------------------------------------------------------------------
    async def index(self, request: Any) -> Any:
        from starlette.responses import FileResponse

        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_config(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        c = self.config
        return JSONResponse(
            {
                "mode": self.mode,
                "annotator": c.annotator,
                "prefetch": c.prefetch,
                "grid_size": c.grid_size,
                "references_per_class": c.references_per_class,
                "classes": [{"class_id": i, "name": self.names.get(i, "")} for i in self.class_ids],
            }
        )

    def api_recent(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        p = request.query_params
        annotator = text(p.get("annotator") or self.config.annotator, "annotator", MAX_NAME)
        class_id = self.class_id(p["class_id"]) if p.get("class_id") else None
        rows = self.queue.recent(annotator, class_id, integer(p.get("n", "12"), "n", 1, 100))
        for r in rows:
            item = self.queue.item(r["key"])
            r["image"] = self.image_url(item) if item else None
            r["title"] = item.title if item else ""
        return JSONResponse({"recent": rows})

    def api_progress(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        p = request.query_params
        annotator = text(p.get("annotator") or self.config.annotator, "annotator", MAX_NAME)
        return JSONResponse(self.queue.progress(self.class_id(p.get("class_id")), annotator))

    def api_stats(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        from janus_build.tag.stats import compute_stats

        return JSONResponse(compute_stats(self.queue, self.config.stage_dir))

    def api_references(self, request: Any) -> Any:
        """``--references`` photos of the class, else images two annotators confirmed in-class."""
        from starlette.responses import JSONResponse

        class_id = self.class_id(request.query_params.get("class_id"))
        n = self.config.references_per_class
        files = self.references.get(class_id, [])[:n]
        if files:
            return JSONResponse({"source": "references", "images": [f"/ref/{class_id}/{i}" for i in range(len(files))]})
        urls = []
        for key in self.queue.confirmed_in_keys(class_id, n):
            item = self.queue.item(key)
            if item is not None and (url := self.image_url(item)):
                urls.append(url)
        return JSONResponse({"source": "confirmed", "images": urls})

    def image(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response

        from janus_build.core.shards import read_image

        item = self.queue.item(request.path_params["key"])
        if item is None or item.image_offset is None or self.images_dir is None or item.shard is None:
            return JSONResponse({"error": "no such image"}, status_code=404)
        try:
            data = read_image(self.images_dir, item.shard, item.image_offset, item.image_size or 0)
        except OSError as exc:
            log.warning("image %s: unreadable (%s)", item.key, exc)
            return JSONResponse({"error": "image unreadable"}, status_code=404)
        media = MEDIA_TYPES.get((item.image_ext or "jpg").lower(), "application/octet-stream")
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=86400, immutable"})

    def reference(self, request: Any) -> Any:
        """A reference photo by class and position; one that now resolves outside ``--references`` is 404."""
        from starlette.responses import FileResponse, JSONResponse

        files = self.references.get(request.path_params["class_id"], [])
        index = request.path_params["index"]
        real = files[index].resolve() if 0 <= index < len(files) else None
        if real is None or self.references_root is None or not real.is_relative_to(self.references_root):
            return JSONResponse({"error": "no such reference image"}, status_code=404)
        if not real.is_file():
            return JSONResponse({"error": "no such reference image"}, status_code=404)
        return FileResponse(
            real,
            media_type=MEDIA_TYPES.get(real.suffix.lower().lstrip("."), "application/octet-stream"),
            headers={"Cache-Control": "private, max-age=3600"},
        )

    # -- changes (POST only) ----------------------------------------------------------------
    async def api_next(self, request: Any) -> Any:
        """Lease up to ``n`` items of ``class_id`` to the tab (its own leased items first)."""
        from starlette.responses import JSONResponse

        data = await json_object(request)
        annotator, client = self.who(data)
        class_id = self.class_id(data.get("class_id"))
        n = integer(data.get("n", self.config.prefetch), "n", 1, MAX_ITEMS)
        items = await _threadpool(self.queue.next_items, class_id, client, annotator, n)
        return JSONResponse({"items": [self.item_json(i) for i in items]})

    async def api_decide(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        data = await json_object(request)
        annotator, client = self.who(data)
        d = self.decision(data)
        result = await _threadpool(self.queue.decide, d.key, d.decision, annotator, client)
        return JSONResponse({"saved": [result]})

    async def api_decide_batch(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        data = await json_object(request)
        annotator, client = self.who(data)
        raw = data.get("decisions")
        if not isinstance(raw, list) or len(raw) > MAX_DECISIONS:
            raise ApiError(f"decisions: expected a list of at most {MAX_DECISIONS} {{key, decision}} objects")
        decisions = [self.decision(d) for d in raw]
        results = await _threadpool(self.queue.decide_many, decisions, annotator, client)
        return JSONResponse({"saved": results})

    async def api_undo(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        data = await json_object(request)
        annotator, client = self.who(data)
        items = await _threadpool(self.queue.undo, client, annotator)
        return JSONResponse({"items": [self.item_json(i) for i in items]})

    async def api_release(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        data = await json_object(request)
        _, client = self.who(data)
        class_id = self.class_id(data["class_id"]) if data.get("class_id") is not None else None
        keys = data.get("keys")
        if keys is not None and (not isinstance(keys, list) or len(keys) > MAX_DECISIONS):
            raise ApiError(f"keys: expected a list of at most {MAX_DECISIONS} keys")
        keys = [text(k, "keys", MAX_KEY) for k in keys] if keys is not None else None
        await _threadpool(self.queue.release, client, class_id, keys)
        return JSONResponse({"released": True})


async def error_response(request: Any, exc: Exception) -> Any:
    """A refused request as ``{"error": ...}``: the status of an :class:`ApiError`, 404 for an unknown key."""
    from starlette.responses import JSONResponse

    status = getattr(exc, "status", None) or (404 if "not in the queue" in str(exc) else 400)
    return JSONResponse({"error": str(exc)}, status_code=status)


async def _threadpool(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)
