"""Talking to Flickr: credentials, a token-bucket rate limit, retried ``flickr.photos.search`` calls.

Uses ``flickrapi`` (``format='parsed-json'``, ``store_token=False``: no token is read or written
on disk). Calls are signed with OAuth by flickrapi, so the key travels in a header, never in a
URL that could be logged. The endpoint is flickrapi's ``REST_URL``, replaced by ``--api-url``.
"""

from __future__ import annotations

import dataclasses
import html
import html.parser
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, RemoteError
from janus_build.log import redact

log = logging.getLogger(__name__)

FLICKR_REST_URL = "https://api.flickr.com/services/rest/"
MAX_RESULTS = 4000  # Flickr returns at most this many results per query (any page beyond repeats)
PER_PAGE = 500  # the API's maximum page size

# flickr.photos.licenses.getInfo (2024): id -> (name, url)
LICENSES: dict[int, tuple[str, str]] = {
    0: ("All Rights Reserved", ""),
    1: ("CC BY-NC-SA 2.0", "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    2: ("CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/"),
    3: ("CC BY-NC-ND 2.0", "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    4: ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"),
    5: ("CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/"),
    6: ("CC BY-ND 2.0", "https://creativecommons.org/licenses/by-nd/2.0/"),
    7: ("No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    8: ("United States Government Work", "http://www.usa.gov/copyright.shtml"),
    9: ("CC0 1.0 (Public Domain Dedication)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    10: ("Public Domain Mark 1.0", "https://creativecommons.org/publicdomain/mark/1.0/"),
    11: ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    12: ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    13: ("CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/"),
    14: ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    15: ("CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    16: ("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
}
# The paper used "Creative Commons licenses only": every CC licence and CC0.
CREATIVE_COMMONS_LICENSES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 9, 11, 12, 13, 14, 15, 16)

# url_<suffix> extras, smallest to largest (``o`` = original, whose size varies).
SIZE_SUFFIXES = ("sq", "t", "s", "q", "m", "n", "w", "z", "c", "l", "h", "k", "3k", "4k", "5k", "6k", "o")
EXTRAS = "description,license,owner_name,tags,date_upload," + ",".join(f"url_{s}" for s in SIZE_SUFFIXES)

CONFIG_ENV = "JANUS_FLICKR_CONFIG"


def default_config_path() -> Path:
    """``$JANUS_FLICKR_CONFIG``, else ``$XDG_CONFIG_HOME/janus/flickr.toml`` (``~/.config/janus/flickr.toml``)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "janus" / "flickr.toml"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A Flickr API key and secret. ``repr`` never shows them."""

    api_key: str = dataclasses.field(repr=False)
    api_secret: str = dataclasses.field(repr=False)

    @classmethod
    def load(cls, config_path: str | Path | None = None) -> Credentials:
        """Read ``FLICKR_API_KEY``/``FLICKR_API_SECRET``, else the config file (``api_key``, ``api_secret``).

        Raises:
            ConfigError: no key was found (the message says where to put one).
        """
        key, secret = os.environ.get("FLICKR_API_KEY", "").strip(), os.environ.get("FLICKR_API_SECRET", "").strip()
        path = Path(config_path) if config_path else default_config_path()
        if not key and path.is_file():
            import tomllib

            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: unreadable Flickr config ({exc.__class__.__name__})") from None
            key = str(data.get("api_key", "")).strip()
            secret = secret or str(data.get("api_secret", "")).strip()
        if not key:
            raise ConfigError(
                "no Flickr API key: set FLICKR_API_KEY and FLICKR_API_SECRET in the environment, or write "
                f'api_key = "..." and api_secret = "..." to {path} (get a key at https://www.flickr.com/services/apps/create/)'
            )
        return cls(key, secret)


class TokenBucket:
    """At most ``calls_per_hour`` calls per hour, with a burst of up to ``capacity`` calls.

    Thread-safe; ``acquire`` sleeps until a token is available.
    """

    def __init__(
        self,
        calls_per_hour: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_hour <= 0:
            raise ConfigError(f"--calls-per-hour must be positive, got {calls_per_hour}")
        self.rate = calls_per_hour / 3600.0  # tokens per second
        self.capacity = capacity if capacity is not None else max(1.0, calls_per_hour / 60.0)
        self.tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping as needed; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
                self._last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return waited
                wait = (1 - self.tokens) / self.rate
            self._sleep(wait)
            waited += wait


@dataclasses.dataclass(frozen=True)
class SearchPage:
    """One page of ``flickr.photos.search``."""

    page: int
    pages: int
    total: int
    photos: list[dict[str, Any]]


class _Retryable(Exception):
    pass


def license_name(license_id: int) -> str:
    return LICENSES.get(license_id, (f"license {license_id}", ""))[0]


# Flickr's documented longer side per size suffix, used when a reply omits width_*/height_*.
NOMINAL_SIDE = {
    "sq": 75, "t": 100, "s": 240, "q": 150, "m": 500, "n": 320, "w": 400, "z": 640, "c": 800,
    "l": 1024, "h": 1600, "k": 2048, "3k": 3072, "4k": 4096, "5k": 5120, "6k": 6144,
}  # fmt: skip


def _dimension(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def pick_url(photo: Mapping[str, Any], max_size: int) -> tuple[str | None, int | None, int | None]:
    """The largest ``url_*`` of a photo whose longer side is at most ``max_size`` (else the smallest).

    A size the reply gives without ``width_*``/``height_*`` is ranked by Flickr's nominal side for
    its suffix (the original, ``o``, by nothing: it is taken only when nothing else is offered),
    and its width and height are None, never 0.
    """
    candidates = []
    for order, suffix in enumerate(SIZE_SUFFIXES):
        url = photo.get(f"url_{suffix}")
        if not url:
            continue
        width, height = _dimension(photo.get(f"width_{suffix}")), _dimension(photo.get(f"height_{suffix}"))
        if width and height:
            side = max(width, height)
        else:
            width = height = None
            side = NOMINAL_SIDE.get(suffix, 10**9)
        candidates.append((side, order, url, width, height))
    if not candidates:
        return None, None, None
    fitting = [c for c in candidates if c[0] <= max_size]
    _, _, url, width, height = max(fitting) if fitting else min(candidates)
    return url, width, height


class FlickrClient:
    """``flickr.photos.search`` with rate limiting and retries.

    Args:
        credentials: the API key and secret.
        api_url: the REST endpoint (flickrapi's ``REST_URL``).
        limiter: shared token bucket (one per API key).
        retries: attempts after the first on a retryable failure.
        timeout: seconds per HTTP request.
        backoff: first back-off in seconds, doubled per attempt (with full jitter), capped by ``backoff_max``.
    """

    def __init__(
        self,
        credentials: Credentials,
        api_url: str = FLICKR_REST_URL,
        limiter: TokenBucket | None = None,
        *,
        retries: int = 8,
        timeout: float = 60.0,
        backoff: float = 1.0,
        backoff_max: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import flickrapi

        self._api = flickrapi.FlickrAPI(
            credentials.api_key, credentials.api_secret or "-", format="parsed-json", store_token=False, timeout=timeout
        )
        self._api.REST_URL = api_url
        # flickrapi logs every non-200 reply at ERROR; our retry messages say it once, redacted.
        logging.getLogger("flickrapi").setLevel(logging.CRITICAL)
        self.api_url = api_url
        self.limiter = limiter or TokenBucket(3600)
        self.retries, self.backoff, self.backoff_max, self._sleep = retries, backoff, backoff_max, sleep
        self.calls = 0  # HTTP calls made, retries included
        self._lock = threading.Lock()

    def search(
        self,
        text: str,
        *,
        page: int = 1,
        per_page: int = PER_PAGE,
        licenses: Sequence[int] = CREATIVE_COMMONS_LICENSES,
        min_upload_date: int | None = None,
        max_upload_date: int | None = None,
    ) -> SearchPage:
        """One page of results, sorted by interestingness, safe search on, photos only.

        Raises:
            RemoteError: invalid key (error 100), another non-retryable Flickr error, or retries exhausted.
        """
        params: dict[str, Any] = dict(
            text=text,
            sort="interestingness-desc",
            safe_search=1,
            content_type=1,
            media="photos",
            license=",".join(str(i) for i in licenses),
            extras=EXTRAS,
            per_page=per_page,
            page=page,
        )
        if min_upload_date is not None:
            params["min_upload_date"] = int(min_upload_date)
        if max_upload_date is not None:
            params["max_upload_date"] = int(max_upload_date)
        attempt = 0
        while True:
            self.limiter.acquire()
            with self._lock:
                self.calls += 1
            try:
                return self._call(params)
            except _Retryable as exc:
                if attempt >= self.retries:
                    raise RemoteError(
                        f"Flickr search failed after {attempt + 1} attempts: {redact(str(exc))}"
                    ) from None
                delay = random.uniform(0, min(self.backoff_max, self.backoff * 2**attempt))
                log.warning(
                    "Flickr call failed (%s); retry %d/%d in %.1fs", redact(str(exc)), attempt + 1, self.retries, delay
                )
                self._sleep(delay)
                attempt += 1

    def _call(self, params: dict[str, Any]) -> SearchPage:
        import flickrapi
        import requests

        try:
            reply = self._api.photos.search(**params)
        except flickrapi.exceptions.FlickrError as exc:
            code = str(getattr(exc, "code", None) or "")
            message = str(exc)
            if code == "100":
                raise RemoteError(
                    "Flickr rejected the API key (error 100: invalid API key); set FLICKR_API_KEY "
                    "(and FLICKR_API_SECRET) to a valid key from https://www.flickr.com/services/apps/"
                ) from None
            if code in ("105", "10", "0") or "Status code 5" in message or "Status code 429" in message:
                raise _Retryable(message) from None
            if not code and "Status code" in message:
                raise RemoteError(f"Flickr endpoint {redact(self.api_url)} answered: {redact(message)}") from None
            raise RemoteError(f"Flickr search error: {redact(message)}") from None
        except (
            requests.exceptions.Timeout,
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _Retryable(f"{exc.__class__.__name__}") from None
        except ValueError as exc:  # json.JSONDecodeError: a malformed or truncated body
            raise _Retryable(f"malformed JSON ({exc})") from None
        try:
            photos = reply["photos"]
            return SearchPage(
                page=int(photos["page"]),
                pages=int(photos["pages"]),
                total=int(photos["total"]),
                photos=list(photos.get("photo") or []),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _Retryable(f"unexpected reply shape ({exc.__class__.__name__}: {exc})") from None


class _TextExtractor(html.parser.HTMLParser):
    """The text of an HTML fragment: markup dropped, entities decoded, ``<br>``/``<p>`` as spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("br", "p", "div", "li"):
            self.parts.append(" ")


def html_text(fragment: str) -> str:
    """Plain text of an HTML fragment (a Flickr description): tags removed, entities decoded."""
    if "<" not in fragment and "&" not in fragment:
        return fragment.strip()
    parser = _TextExtractor()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


def unescape(value: Any) -> str:
    """A Flickr text field (title, tags, owner name) with HTML entities decoded: ``Bob &amp; Alice``."""
    return html.unescape(str(value or "")).strip()


def _license_id(photo: Mapping[str, Any]) -> int | None:
    try:
        return int(photo.get("license"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def photo_record(photo: Mapping[str, Any], max_size: int) -> dict[str, Any]:
    """Flatten one search result into the metadata columns (see ``schemas.FETCH_METADATA``).

    Text fields have their HTML entities decoded; ``description`` is the description's text
    (markup removed), ``description_html`` the description as Flickr sent it. A reply without a
    usable licence gets ``license_id`` None (the licence check drops it).
    """
    photo_id = str(photo["id"])
    description = photo.get("description")
    if isinstance(description, Mapping):
        description = description.get("_content")
    url, width, height = pick_url(photo, max_size)
    license_id = _license_id(photo)
    try:
        date_upload = int(photo.get("dateupload"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        date_upload = None
    owner = str(photo.get("owner") or "")
    known = license_id in LICENSES
    return {
        "key": f"flickr-{photo_id}",
        "photo_id": photo_id,
        "title": unescape(photo.get("title")),
        "description": html_text(str(description or "")),
        "description_html": str(description or ""),
        "tags": unescape(photo.get("tags")),
        "owner": owner,
        "owner_name": unescape(photo.get("ownername")),
        "license_id": license_id,
        "license": license_name(license_id) if license_id is not None else None,
        "license_url": LICENSES[license_id][1] if known else None,  # type: ignore[index]
        "url": url,
        "width": width,
        "height": height,
        "date_upload": date_upload,
        "page_url": f"https://www.flickr.com/photos/{owner}/{photo_id}" if owner else None,
    }


def license_drop(license_id: int | None, accepted: Sequence[int]) -> str | None:
    """The rule that drops a photo for its licence (``license:missing``, ``license:0``), or None.

    Flickr filters by ``license`` server-side; this checks every reply again, so a proxy, a
    mirror or an API change can never let an unwanted licence through.
    """
    if license_id is None:
        return "license:missing"
    return None if license_id in accepted else f"license:{license_id}"
