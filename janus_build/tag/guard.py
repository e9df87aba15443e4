"""The tagging server's gate: one pure ASGI middleware that every HTTP request passes first.

* **Host** must name this server (loopback names, the ``--host`` it was started with, and with
  ``--allow-remote`` the machine's own names or ``--allowed-host``): a DNS-rebinding page, whose
  requests carry its own domain in ``Host``, gets 403. The port is not checked, so an
  ``ssh -L 9000:localhost:8765`` tunnel still works.
* **Origin**, when a browser sends one, must be this very origin (``http(s)://`` + ``Host``);
  ``Sec-Fetch-Site: cross-site|same-site`` is refused too, except a plain navigation to the page.
  Requests from scripts (no ``Origin``, no ``Sec-Fetch-Site``) pass.
* **Body size**: at most :data:`MAX_BODY` bytes; a larger ``Content-Length`` is refused with 413
  before a byte is read, and a chunked body is read only up to the limit. The body is never
  echoed back.
* Every response gets a Content-Security-Policy, ``nosniff``, a same-origin referrer policy and
  ``Server-Timing: app;dur=<ms>`` (read by the benchmark).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

MAX_BODY = 1 << 20  # 1 MiB: a grid page of 100 decisions is about 10 kB
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the page's own
# POSTs; same-origin still sends nothing to the image hosts of an audit sample.
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def split_host(value: str) -> tuple[str, str] | None:
    """``"Name:8765"`` -> ``("name", "8765")``, ``"[::1]"`` -> ``("::1", "")``; ``None`` when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if not name or (port and not port.isdigit()):
        return None
    return name.rstrip("."), port


class RequestGuard:
    """Pure ASGI middleware: Host and Origin checks, a body limit, security headers.

    Args:
        app: the application behind the gate.
        hosts: the host names (lower case, no port, IPv6 without brackets) this server answers to.
        max_body: the largest request body accepted, in bytes.
    """

    def __init__(self, app: Any, hosts: Iterable[str], max_body: int = MAX_BODY) -> None:
        self.app = app
        self.hosts = frozenset(h.lower().strip("[]").rstrip(".") for h in hosts)
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                headers.append((b"server-timing", f"app;dur={ms:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope, headers)
        if refusal is None and _has_body(headers):
            refusal, receive = await self._buffer_body(headers, receive)
        if refusal is not None:
            await _send_error(send_with_headers, *refusal)
            return
        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        """``(status, message)`` when the request's Host or Origin is not this server's, else ``None``."""
        host = split_host(headers.get("host", ""))
        if host is None or host[0] not in self.hosts:
            return 403, "Host header not allowed: open the page by the address the server printed"
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in {
            f"http://{headers['host'].lower()}",
            f"https://{headers['host'].lower()}",
        }:
            return 403, "cross-origin request refused"
        site = headers.get("sec-fetch-site", "")
        navigation = scope["method"] == "GET" and headers.get("sec-fetch-mode") == "navigate" and scope["path"] == "/"
        if site in ("cross-site", "same-site") and not navigation:
            return 403, "cross-site request refused"
        return None

    async def _buffer_body(self, headers: dict[str, str], receive: Any) -> tuple[tuple[int, str] | None, Any]:
        """Read the body (at most ``max_body`` bytes) and a ``receive`` that replays it to the app."""
        too_large = (413, f"request body over {self.max_body} bytes")
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return (400, "Content-Length is not a number"), receive
            if int(length) > self.max_body:
                return too_large, receive  # refused before a byte is read
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return (400, "the client went away"), receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return too_large, receive  # stop reading: the rest is never taken in
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return None, replay


def _has_body(headers: dict[str, str]) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


async def _send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
