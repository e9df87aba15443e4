"""Options of ``janus fetch``: one frozen dataclass, validated on construction (light imports only)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from janus_build.errors import ConfigError
from janus_build.fetch.flickr import CREATIVE_COMMONS_LICENSES, FLICKR_REST_URL, LICENSES
from janus_build.log import redact

DEFAULT_PER_CLASS = 1000

# Options that may differ when a run is resumed: they change how the work is done, not its result.
# ``queries`` (the file's path) may move; its content's sha256 is compared instead.
VOLATILE = (
    "out",
    "queries",
    "workers",
    "overwrite",
    "processes",
    "threads",
    "calls_per_hour",
    "metadata_only",
    "api_url",
    "request_timeout",
    "retries",
)


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """Options of ``janus fetch`` (CLI options map onto these one to one).

    Attributes:
        out: output directory.
        queries: queries TOML file; None = the shipped ``queries/in100.toml``.
        classes: class ids to fetch (None = every class of the file).
        per_class: photos to keep per class; None = each class's ``target`` (else 1000).
        api_url: Flickr REST endpoint (credentials inside it are never written anywhere).
        metadata_only: stop before downloading images.
        calls_per_hour: API call budget (token bucket; Flickr allows 3,600 per key).
        workers: classes searched concurrently (they share the call budget).
        licenses: Flickr licence ids to accept, checked again locally on every reply.
        max_size: pick the largest image URL whose longer side is at most this many pixels.
        processes / threads: img2dataset download processes and threads per process.
        shard_size: images per image shard.
        request_timeout: seconds per API or image request.
        retries: API retries after the first attempt (exponential back-off with jitter).
        min_upload_date / max_upload_date: unix-time bounds used when splitting by upload date
            (None: Flickr's start, and the time of the first split).
        respect_optouts: skip images served with an ``X-Robots-Tag`` opt-out (noai, noimageai, ...).
        overwrite: discard an earlier output in ``out``.

    Raises:
        ConfigError: on construction, naming the flag of an invalid value.
    """

    out: Path
    queries: Path | None = None
    classes: tuple[int, ...] | None = None
    per_class: int | None = None
    api_url: str = FLICKR_REST_URL
    metadata_only: bool = False
    calls_per_hour: int = 3600
    workers: int = 1
    licenses: tuple[int, ...] = CREATIVE_COMMONS_LICENSES
    max_size: int = 1024
    processes: int = 1
    threads: int = 16
    shard_size: int = 1000
    request_timeout: float = 30.0
    retries: int = 8
    min_upload_date: int | None = None
    max_upload_date: int | None = None
    respect_optouts: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.queries is not None:
            object.__setattr__(self, "queries", Path(self.queries))
        if self.classes is not None:  # the queries file's order is kept anyway: --classes 2,291 == 291,2
            object.__setattr__(self, "classes", tuple(sorted(set(self.classes))))
        object.__setattr__(self, "licenses", tuple(self.licenses))
        for ok, message in self._checks():
            if not ok:
                raise ConfigError(message)

    def _checks(self) -> list[tuple[bool, str]]:
        unknown = [i for i in self.licenses if i not in LICENSES]
        return [
            (self.per_class is None or self.per_class > 0, f"--per-class must be positive, got {self.per_class}"),
            (self.calls_per_hour > 0, f"--calls-per-hour must be positive, got {self.calls_per_hour}"),
            (self.workers >= 1, f"--workers must be at least 1, got {self.workers}"),
            (self.processes >= 1, f"--processes must be at least 1, got {self.processes}"),
            (self.threads >= 1, f"--threads must be at least 1, got {self.threads}"),
            (self.shard_size >= 1, f"--shard-size must be at least 1, got {self.shard_size}"),
            (self.max_size >= 1, f"--max-size must be at least 1, got {self.max_size}"),
            (self.retries >= 0, f"retries must be 0 or more, got {self.retries}"),
            (bool(self.licenses), "--licenses must name at least one licence id"),
            (not unknown, f"--licenses: {unknown} unknown; ids must be among {sorted(LICENSES)}"),
            (
                self.api_url.startswith(("http://", "https://")),
                f"--api-url must be an http(s) URL, got {redact(self.api_url)!r}",
            ),
            (self.request_timeout > 0, f"--timeout must be positive, got {self.request_timeout}"),
        ]
