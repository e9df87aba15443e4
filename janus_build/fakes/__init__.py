"""Fakes of remote services (a Flickr REST server) for tests, benchmarks and ``janus demo``."""

from janus_build.fakes.flickr_server import FakeFlickr

__all__ = ["FakeFlickr"]
