"""Logging set-up shared by the CLI and library users; secrets are scrubbed from every record."""

from __future__ import annotations

import logging
import os
import re

_SECRET_ENV_VARS = ("FLICKR_API_KEY", "FLICKR_API_SECRET")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"]+@")
_SECRET_PARAM = re.compile(r"(api_key|api_secret|oauth_token|api_sig)=([^&\s'\"]+)", re.IGNORECASE)


def _secrets() -> list[str]:
    return [v for name in _SECRET_ENV_VARS if (v := os.environ.get(name)) and len(v) >= 4]


def redact(text: str) -> str:
    """Remove credentials from text: known secret values, ``api_key=...`` URL parameters and the
    ``user:password@`` part of any URL."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


class RedactingFilter(logging.Filter):
    """Scrubs secrets from the fully formatted message of every record passing through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(verbosity: int = 0, handler: logging.Handler | None = None) -> None:
    """Configure the ``janus_build`` logger: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logger = logging.getLogger("janus_build")
    logger.setLevel(level)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = handler or logging.StreamHandler()
    if handler.formatter is None:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    # Third-party loggers that may echo request URLs carrying credentials.
    for name in ("flickrapi", "urllib3", "requests", "httpx"):
        third = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in third.filters):
            third.addFilter(RedactingFilter())
