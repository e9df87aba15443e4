"""The tagging web app: options, start-up checks and the ASGI app over a :class:`~janus_build.tag.db.TagQueue`.

* :mod:`janus_build.tag.routes`: the endpoints (state changes only on POST, fields checked).
* :mod:`janus_build.tag.guard`: Host / Origin checks, the body limit, security headers.

Images are served by key from the shards (offset and size from the index, never a path from the
request); reference photos by class id and position in a listing made at start-up, confined to
the ``--references`` folder. Every decision is committed to SQLite before its response is sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError, JanusError
from janus_build.tag.db import TagQueue

log = logging.getLogger(__name__)

REFERENCE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")


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
    allowed_hosts: tuple[str, ...] = ()  # extra Host names (e.g. a DNS name of this machine)


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

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: expected a TCP port from 1 to 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def scan_references(directory: Path | None) -> dict[int, list[Path]]:
    """``DIR/<class_id>/*.{jpg,png,webp,...}`` sorted by name -> {class_id: [files]}.

    A file (or class folder) that resolves outside ``DIR`` through a symlink is left out with a
    warning: the server never serves anything outside the folder it was given.
    """
    if directory is None:
        return {}
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"--references {directory}: no such directory (expected DIR/<class_id>/*.jpg)")
    root = directory.resolve()
    out: dict[int, list[Path]] = {}
    for child in sorted(directory.iterdir()):
        if not child.is_dir():
            continue
        try:
            class_id = int(child.name)
        except ValueError:
            log.warning("--references: skipping %s (folder names must be class ids, e.g. 291)", child)
            continue
        files = [p for p in sorted(child.iterdir()) if p.suffix.lower() in REFERENCE_EXTENSIONS and p.is_file()]
        inside = [p for p in files if p.resolve().is_relative_to(root)]
        for p in set(files) - set(inside):
            log.warning("--references: skipping %s (a link to a file outside %s)", p, directory)
        if inside:
            out[class_id] = inside
    if not out:
        log.warning(
            "--references %s: no DIR/<class_id>/*.jpg files found; only images two annotators confirmed are shown",
            directory,
        )
    return out


def allowed_hosts(config: ServeConfig) -> set[str]:
    """The ``Host`` names the page answers to (anything else is a DNS-rebinding attempt: 403)."""
    import socket

    names = {"127.0.0.1", "localhost", "::1", config.host.lower(), *(h.lower() for h in config.allowed_hosts)}
    if config.allow_remote and config.host in WILDCARD:
        # Bound to every interface: the machine's own names and addresses are how others reach it.
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        with contextlib.suppress(OSError):
            names |= {info[4][0] for info in socket.getaddrinfo(hostname, None)}
    return names - set(WILDCARD)


def create_app(queue: TagQueue, config: ServeConfig) -> Any:
    """Build the ASGI application (the caller owns ``queue`` and closes it).

    Routes live in :class:`~janus_build.tag.routes.TagApi`; every request first passes the
    :class:`~janus_build.tag.guard.RequestGuard` (Host, Origin, body size).
    """
    from starlette.applications import Starlette

    from janus_build.tag.guard import RequestGuard
    from janus_build.tag.routes import TagApi, error_response

    references_root = Path(config.references).resolve() if config.references is not None else None
    api = TagApi(queue, config, scan_references(config.references), references_root)
    app = Starlette(routes=api.routes(), exception_handlers={JanusError: error_response})
    return RequestGuard(app, allowed_hosts(config))


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
