"""The demo kit: everything ``janus demo`` (and the tests and benchmarks) use to run offline.

* :mod:`.runner`: the demo itself, every stage end to end on generated data;
* :mod:`.flickr_server`: a fake Flickr REST server on 127.0.0.1 (``FakeFlickr``);
* :mod:`.images`: generated images with a learnable class signal and distribution shifts;
* :mod:`.eval_sets`: generated balance shards and ImageNet-val/V2/Sketch/R/A folders;
* :mod:`.tiny_blip`: a tiny randomly initialised BLIP built from a config (no download).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_CLASSES", "DemoConfig", "DemoResult", "FakeFlickr", "make_fake_flickr", "run_demo"]


def __getattr__(name: str) -> Any:  # lazy: importing demo.images must not import the runner or Starlette
    if name == "FakeFlickr":
        from janus_build.demo.flickr_server import FakeFlickr

        return FakeFlickr
    if name in ("DemoConfig", "DemoResult", "make_fake_flickr", "run_demo", "BUDGETS", "DEMO_CLASSES"):
        from janus_build.demo import runner

        return getattr(runner, name)
    raise AttributeError(name)
