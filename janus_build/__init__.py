"""janus-build: build JANuS-style datasets on a data budget and measure robustness."""

__version__ = "0.1.0"
