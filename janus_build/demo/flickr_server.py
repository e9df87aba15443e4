"""A fake Flickr REST server on 127.0.0.1 for tests, benchmarks and ``janus demo``.

It implements ``flickr.photos.search`` over a generated, deterministic photo corpus faithfully
enough to matter: ``text`` search (required words, quoted phrases, OR/AND, ``-exclusions``),
``sort=interestingness-desc``, pagination with ``total``/``pages``, Flickr's 4,000-result cap
(pages beyond it repeat the last reachable page, as Flickr does), ``min_upload_date`` /
``max_upload_date``, licence and safe-search filters, ``extras`` with ``url_*`` sizes, and
JPEG images at the returned URLs (from :func:`janus_build.demo.images.class_image`).

Like real Flickr it is *looser* than the paper's query semantics: a required word matches any
word that starts with it (``lion`` matches ``lionlike``) and exclusions are checked against
titles and tags only, not descriptions. The fetch stage's local application of each query
catches both, which is what the tests check.

Faults are injected from a queue (``faults=["105", "500", "malformed", "slow", "100"]``):
each search call takes the next fault; an empty queue means normal answers. A request with a
key other than ``api_key`` always gets error 100.

Example::

    with FakeFlickr(classes={291: "lion"}, photos_per_class=1500) as fake:
        run_fetch(FetchConfig(out=..., api_url=fake.api_url), credentials=fake.credentials)
        assert not fake.repeated_pages()
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

FAULTS = ("100", "105", "500", "malformed", "slow")
CAP = 4000
DATE_MIN = 1104537600  # 2005-01-01
DATE_MAX = 1672444800  # 2022-12-31
_SIZES = (("sq", 75), ("t", 100), ("q", 150), ("s", 240), ("n", 320), ("m", 500), ("z", 640), ("c", 800), ("l", 1024))
_CC = (1, 2, 3, 4, 5, 6, 9, 11, 12, 14)
_OTHER = (0, 7, 8, 10)
_FILLER = [
    "sunny",
    "morning",
    "trip",
    "holiday",
    "summer",
    "nikon",
    "canon",
    "outdoor",
    "family",
    "weekend",
    "light",
    "color",
    "travel",
    "nature",
]
_WORD = re.compile(r"[0-9a-z]+")


@dataclasses.dataclass
class FakePhoto:
    photo_id: int
    class_id: int
    index: int
    title: str
    description: str
    tags: str
    owner: str
    owner_name: str
    license: int
    safety: int
    date_upload: int
    interestingness: float
    true_class: int | None = None  # what the image shows: class_id, or a confuser (None = class_id)
    tokens_all: frozenset[str] = frozenset()
    tokens_title_tags: frozenset[str] = frozenset()
    reply: dict[str, Any] = dataclasses.field(default_factory=dict)  # reply fields replaced (None: left out)
    robots: str | None = None  # X-Robots-Tag sent with its image (e.g. "noai")


def _tokens(*texts: str) -> frozenset[str]:
    return frozenset(w for t in texts for w in _WORD.findall(t.lower()))


class FakeFlickr:
    """A fake Flickr REST endpoint running in a background thread (a context manager).

    Args:
        classes: class id -> name; the corpus of each class is generated from its query.
        queries: class id -> query string used to generate photos that match it (default: the name).
        photos_per_class: corpus size per class (an int, or a mapping class id -> int).
        faults: a queue of faults for successive search calls (see :data:`FAULTS`).
        slow_seconds: how long a ``slow`` fault stalls before answering.
        latency: seconds every search call takes (to make runs long enough to interrupt).
        image_size: the original photos' longer side in pixels.
        seed: corpus seed.
        confuser_fraction: share of each class's photos whose text names the class but whose image
            shows another (a "confuser"); :meth:`truth` says which, for automatic tagging.
    """

    api_key = "fake-flickr-key-0123456789abcdef"  # the credentials it accepts
    api_secret = "fake-flickr-secret-0123"

    def __init__(
        self,
        classes: Mapping[int, str],
        *,
        queries: Mapping[int, str] | None = None,
        photos_per_class: int | Mapping[int, int] = 1200,
        faults: Iterable[str] = (),
        slow_seconds: float = 3.0,
        latency: float = 0.0,
        image_size: int = 160,
        seed: int = 0,
        share_fraction: float = 0.02,
        confuser_fraction: float = 0.0,
    ) -> None:
        self.classes = dict(classes)
        self.queries = {c: (queries or {}).get(c, name) for c, name in self.classes.items()}
        self.photos_per_class = photos_per_class
        self.slow_seconds = slow_seconds
        self.latency = latency
        self.image_latency = 0.0  # seconds every image request takes (set it to make downloads slow)
        self.image_size = image_size
        self.seed, self.share_fraction = seed, share_fraction
        self.confuser_fraction = confuser_fraction
        self.calls: list[dict[str, Any]] = []
        self.image_requests = 0
        self._faults: collections.deque[str] = collections.deque()
        self.inject(*faults)
        self._lock = threading.Lock()
        self.photos: list[FakePhoto] = self._build_corpus()
        self._by_id = {p.photo_id: p for p in self.photos}
        self._search_cache: dict[tuple[Any, ...], list[FakePhoto]] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- corpus -----------------------------------------------------------------------------
    def _count(self, class_id: int) -> int:
        if isinstance(self.photos_per_class, Mapping):
            return int(self.photos_per_class.get(class_id, 0))
        return int(self.photos_per_class)

    def _build_corpus(self) -> list[FakePhoto]:
        from janus_build.fetch.queries import parse

        parsed = {c: parse(q) for c, q in self.queries.items()}
        ordered = sorted(self.classes)
        photos = []
        for position, class_id in enumerate(ordered):
            query = parsed[class_id]
            other = parsed[ordered[(position + 1) % len(ordered)]] if len(ordered) > 1 else None
            exclusions = [t.text.lower() for t in query.exclusions]
            for index in range(self._count(class_id)):
                rng = random.Random(f"{self.seed}-{class_id}-{index}")
                required = [rng.choice(group).text.lower() for group in query.groups] or [
                    self.classes[class_id].lower()
                ]
                filler = rng.sample(_FILLER, 3)
                if rng.random() < 0.03:  # looser server match: 'lionlike' matches 'lion', local rule drops it
                    required = [w + "like" if " " not in w else w for w in required]
                title = " ".join(required[:1] + filler[:1] + required[1:])
                tags = " ".join([re.sub(r"[^0-9a-z]", "", w) for w in required] + filler[1:])
                description = f"A photo of {' '.join(required)} on a {filler[2]} day."
                draw = rng.random()
                if exclusions and draw < 0.08:  # the server ignores descriptions for exclusions
                    description += f" Next to the {rng.choice(exclusions)}."
                elif exclusions and draw < 0.12:  # the server filters this one out itself
                    tags += " " + re.sub(r"[^0-9a-z]", "", rng.choice(exclusions))
                if other is not None and other.groups and rng.random() < self.share_fraction:
                    tags += " " + " ".join(re.sub(r"[^0-9a-z]", "", g[0].text.lower()) for g in other.groups)
                owner_number = rng.randrange(40)
                safety = 1 if rng.random() < 0.9 else rng.choice((2, 3))
                photo = FakePhoto(
                    photo_id=10_000_000 * (class_id + 1) + index,
                    class_id=class_id,
                    index=index,
                    title=title,
                    description=description,
                    tags=tags,
                    owner=f"{class_id * 100 + owner_number}@N0{owner_number % 10}",
                    owner_name=f"Photographer {class_id}-{owner_number}",
                    license=rng.choice(_CC) if rng.random() < 0.75 else rng.choice(_OTHER),
                    safety=safety,
                    date_upload=rng.randrange(DATE_MIN, DATE_MAX),
                    interestingness=rng.random(),
                )
                if self.confuser_fraction and rng.random() < self.confuser_fraction:
                    # the text says the class, the picture shows something else: what tagging removes
                    photo.true_class = 1000 + class_id
                photo.tokens_all = _tokens(title, tags, description)
                photo.tokens_title_tags = _tokens(title, tags)
                photos.append(photo)
        return photos

    # -- search -----------------------------------------------------------------------------
    @staticmethod
    def _has(tokens: frozenset[str], words: tuple[str, ...], prefix: bool) -> bool:
        if prefix:
            return all(any(t.startswith(w) for t in tokens) for w in words)
        return all(w in tokens for w in words)

    def search(
        self, text: str, licenses: set[int] | None, safe: int, min_date: int | None, max_date: int | None
    ) -> list[FakePhoto]:
        """Every photo matching, sorted by interestingness (descending)."""
        key = (text, tuple(sorted(licenses)) if licenses else None, safe, min_date, max_date)
        with self._lock:
            cached = self._search_cache.get(key)
        if cached is not None:
            return cached
        from janus_build.fetch.queries import parse

        query = parse(text)
        raw_words = [tuple(_WORD.findall(t.text.lower())) for g in query.groups for t in g]
        groups = [[tuple(_WORD.findall(t.text.lower())) for t in g] for g in query.groups]
        exclusions = [tuple(_WORD.findall(t.text.lower())) for t in query.exclusions]
        found = []
        for photo in self.photos:
            if licenses is not None and photo.license not in licenses:
                continue
            if safe == 1 and photo.safety != 1 or safe == 2 and photo.safety == 3:
                continue
            if min_date is not None and photo.date_upload < min_date:
                continue
            if max_date is not None and photo.date_upload > max_date:
                continue
            if not raw_words:
                continue
            if not all(any(self._has(photo.tokens_all, w, True) for w in g) for g in groups):
                continue
            if any(self._has(photo.tokens_title_tags, w, False) for w in exclusions):
                continue
            found.append(photo)
        found.sort(key=lambda p: (-p.interestingness, p.photo_id))
        with self._lock:
            self._search_cache[key] = found
        return found

    def photo_json(self, photo: FakePhoto) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(photo.photo_id),
            "owner": photo.owner,
            "secret": f"{photo.photo_id % 0xFFFFFF:06x}",
            "server": "65535",
            "farm": 66,
            "title": photo.title,
            "ispublic": 1,
            "isfriend": 0,
            "isfamily": 0,
            "license": str(photo.license),
            "description": {"_content": photo.description},
            "dateupload": str(photo.date_upload),
            "ownername": photo.owner_name,
            "tags": photo.tags,
        }
        for suffix, side in _SIZES:
            if side < self.image_size:
                out.update(
                    {f"url_{suffix}": self._image_url(photo, suffix), f"height_{suffix}": side, f"width_{suffix}": side}
                )
        out.update(url_o=self._image_url(photo, "o"), height_o=self.image_size, width_o=self.image_size)
        for name, value in photo.reply.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = value
        return out

    def _image_url(self, photo: FakePhoto, suffix: str) -> str:
        return f"{self.base_url}/photos/{photo.photo_id}_{photo.photo_id % 0xFFFFFF:06x}_{suffix}.jpg"

    def add_photo(
        self,
        class_id: int,
        title: str,
        tags: str = "",
        description: str = "",
        *,
        license: int = 4,
        reply: Mapping[str, Any] | None = None,
        robots: str | None = None,
    ) -> str:
        """Add a hand-made photo, the most interesting of the corpus (so it is on page 1); return its id.

        ``reply`` replaces fields of its JSON in search replies (None removes one: a reply with no
        ``license`` or no ``width_z``) while search still filters on ``license``; ``robots`` is an
        ``X-Robots-Tag`` value sent with its image. Text is searched as Flickr would, markup and all.
        """
        index = sum(1 for p in self.photos if p.class_id == class_id)
        photo = FakePhoto(
            photo_id=10_000_000 * (class_id + 1) + 9_000_000 + index,
            class_id=class_id,
            index=index,
            title=title,
            description=description,
            tags=tags,
            owner=f"{class_id * 100}@N00",
            owner_name=f"Photographer {class_id}-0",
            license=license,
            safety=1,
            date_upload=DATE_MIN + 86400 * (index + 1),
            interestingness=2.0 + len(self.photos) * 1e-6,
            reply=dict(reply or {}),
            robots=robots,
        )
        photo.tokens_all = _tokens(title, tags, description)
        photo.tokens_title_tags = _tokens(title, tags)
        with self._lock:
            self.photos.append(photo)
            self._by_id[photo.photo_id] = photo
            self._search_cache.clear()
        return str(photo.photo_id)

    def set_robots(self, photo_ids: Iterable[int | str], value: str | None) -> None:
        """Send ``X-Robots-Tag: value`` with these photos' images (None: no header)."""
        for photo_id in photo_ids:
            self._by_id[int(photo_id)].robots = value

    # -- faults and bookkeeping --------------------------------------------------------------
    def inject(self, *faults: str) -> None:
        """Queue faults for the next search calls."""
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
            self._faults.append(fault)

    def _next_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    @property
    def credentials(self):
        """:class:`janus_build.fetch.flickr.Credentials` accepted by this server."""
        from janus_build.fetch.flickr import Credentials

        return Credentials(self.api_key, self.api_secret)

    def served_pages(self) -> list[tuple[Any, ...]]:
        """(text, min_upload_date, max_upload_date, page) of every successfully answered search."""
        return [
            (c["text"], c["min_upload_date"], c["max_upload_date"], c["page"])
            for c in list(self.calls)
            if c["fault"] is None and c["status"] == 200 and c["method"] == "flickr.photos.search"
        ]

    def truth(self) -> dict[str, bool]:
        """Ground truth for tagging: ``flickr-<photo_id>`` -> True when the image shows its class."""
        return {f"flickr-{p.photo_id}": p.true_class is None for p in self.photos}

    def repeated_pages(self) -> list[tuple[Any, ...]]:
        """Pages answered more than once."""
        counts = collections.Counter(self.served_pages())
        return [page for page, n in counts.items() if n > 1]

    # -- HTTP -------------------------------------------------------------------------------
    async def _params(self, request: Any) -> dict[str, Any]:
        params = dict(request.query_params)
        if request.method == "POST":
            from urllib.parse import parse_qsl

            params.update(parse_qsl((await request.body()).decode("utf-8", "replace")))
        found = re.search(r'oauth_consumer_key="([^"]*)"', request.headers.get("authorization", ""))
        if found:
            from urllib.parse import unquote

            params["api_key"] = unquote(found.group(1))
        return params

    @staticmethod
    def _record(params: Mapping[str, Any]) -> dict[str, Any]:
        def date(name: str) -> int | None:
            return int(params[name]) if params.get(name) else None

        return {
            "time": time.time(),
            "method": params.get("method", ""),
            "text": params.get("text"),
            "page": int(params.get("page", 1) or 1),
            "per_page": int(params.get("per_page", 100) or 100),
            "min_upload_date": date("min_upload_date"),
            "max_upload_date": date("max_upload_date"),
            "license": params.get("license"),
            "safe_search": params.get("safe_search"),
            "sort": params.get("sort"),
            "fault": None,
            "status": 200,
        }

    @staticmethod
    def _fault_response(fault: str | None, record: dict[str, Any]) -> Any:
        """The reply a fault calls for, or None (``slow`` only delays the answer)."""
        from starlette.responses import JSONResponse, Response

        if fault == "100":
            return JSONResponse({"stat": "fail", "code": 100, "message": "Invalid API Key (Key not found)"})
        if fault == "105":
            return JSONResponse({"stat": "fail", "code": 105, "message": "Service currently unavailable"})
        if fault == "500":
            record["status"] = 500
            return Response("Internal Server Error", status_code=500)
        if fault == "malformed":
            return Response('{"photos": {"page": 1, "pages": ', media_type="application/json")
        return None

    async def _search_body(self, params: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        licenses = {int(x) for x in params["license"].split(",") if x.strip()} if params.get("license") else None
        safe = int(params.get("safe_search", 3) or 3)
        matches = await asyncio.to_thread(
            self.search, params.get("text", ""), licenses, safe, record["min_upload_date"], record["max_upload_date"]
        )
        per_page = max(1, min(500, record["per_page"]))
        total = len(matches)
        reachable_pages = max(1, (min(total, CAP) + per_page - 1) // per_page)
        page = max(1, record["page"])
        served_page = min(page, reachable_pages)  # beyond the cap Flickr repeats results
        chunk = matches[(served_page - 1) * per_page : served_page * per_page]
        photos = {
            "page": page,
            "pages": (total + per_page - 1) // per_page,
            "perpage": per_page,
            "total": total,
            "photo": [self.photo_json(p) for p in chunk],
        }
        return {"photos": photos, "stat": "ok"}

    async def _rest(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response

        params = await self._params(request)
        record = self._record(params)
        try:
            if params.get("api_key") != self.api_key:
                return JSONResponse(
                    {"stat": "fail", "code": 100, "message": "Invalid API Key (Key has invalid format)"}
                )
            record["fault"] = fault = self._next_fault()
            response = self._fault_response(fault, record)
            if response is not None:
                return response
            if fault == "slow":
                await asyncio.sleep(self.slow_seconds)
            if self.latency:
                await asyncio.sleep(self.latency)
            if record["method"] != "flickr.photos.search":
                return JSONResponse({"stat": "fail", "code": 112, "message": f'Method "{record["method"]}" not found'})
            body = await self._search_body(params, record)
            return Response(json.dumps(body), media_type="application/json")
        finally:
            with self._lock:
                self.calls.append(record)

    async def _image(self, request: Any) -> Any:
        from starlette.responses import Response

        from janus_build.demo.images import class_image

        match = re.fullmatch(r"(\d+)_[0-9a-f]+_([a-z0-9]+)\.jpg", request.path_params["name"])
        photo = self._by_id.get(int(match.group(1))) if match else None
        side = None
        if photo is not None:
            suffix = match.group(2)  # type: ignore[union-attr]
            side = self.image_size if suffix == "o" else dict(_SIZES).get(suffix)
        if photo is None or side is None or side > self.image_size:
            return Response("not found", status_code=404)
        with self._lock:
            self.image_requests += 1
        if self.image_latency:
            await asyncio.sleep(self.image_latency)
        shown = photo.class_id if photo.true_class is None else photo.true_class
        data = await asyncio.to_thread(class_image, shown, photo.index, side)
        headers = {"X-Robots-Tag": photo.robots} if photo.robots else None
        return Response(data, media_type="image/jpeg", headers=headers)

    def _app(self):
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/services/rest/", self._rest, methods=["GET", "POST"]),
                Route("/services/rest", self._rest, methods=["GET", "POST"]),
                Route("/photos/{name}", self._image),
            ]
        )

    def start(self) -> FakeFlickr:
        """Start serving on a free port of 127.0.0.1."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-flickr"
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Flickr server did not start")
            time.sleep(0.02)
        log.info("fake Flickr serving %d photos at %s", len(self.photos), self.api_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    @property
    def api_url(self) -> str:
        """The REST endpoint to pass as ``--api-url``."""
        return f"{self.base_url}/services/rest/"

    def __enter__(self) -> FakeFlickr:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def shipped_queries(class_ids: Iterable[int]) -> dict[int, str]:
    """The first query of each class in the shipped ``queries/in100.toml`` (classes not in it are left out).

    The corpus is generated from these, so ``janus fetch`` with the shipped file finds photos for
    every class (a class generated from its bare name, ``shark``, would not match the file's
    ``"great white shark"``).
    """
    from janus_build.fetch.queries import default_queries_file, read_queries_file

    wanted = set(class_ids)
    classes, _ = read_queries_file(default_queries_file())
    return {c.class_id: c.queries[0].text() for c in classes if c.class_id in wanted and c.queries}


def main(argv: list[str] | None = None) -> int:
    """``python -m janus_build.demo.flickr_server --classes 291:lion`` serves until Ctrl-C.

    Classes of the shipped ``queries/in100.toml`` get photos matching its queries, so the
    printed ``janus fetch`` command finds photos for each of them.
    """
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fake Flickr REST API on 127.0.0.1.")
    parser.add_argument("--classes", default="291:lion", help="comma-separated id:name pairs")
    parser.add_argument("--photos-per-class", type=int, default=1200)
    args = parser.parse_args(argv)
    classes = {int(c.split(":", 1)[0]): c.split(":", 1)[1] for c in args.classes.split(",")}
    queries = shipped_queries(classes)
    with FakeFlickr(classes, queries=queries, photos_per_class=args.photos_per_class) as fake:
        print(f"FLICKR_API_KEY={fake.api_key} FLICKR_API_SECRET={fake.api_secret}")
        print(f"--api-url {fake.api_url}", flush=True)
        ids = ",".join(str(c) for c in classes)
        print(f"janus fetch --out run --classes {ids} --per-class 50 --api-url {fake.api_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
