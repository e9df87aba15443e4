"""Fakes of remote services (a Flickr REST server) for tests, benchmarks and ``janus demo``."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeFlickr"]


def __getattr__(name: str) -> Any:  # lazy, so `python -m janus_build.fakes.flickr_server` imports it once
    if name == "FakeFlickr":
        from janus_build.fakes.flickr_server import FakeFlickr

        return FakeFlickr
    raise AttributeError(name)
