"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""

from __future__ import annotations


class JanusError(Exception):
    """Base class of every user-facing error; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class ConfigError(JanusError):
    """An option or configuration value is invalid (the message names the flag)."""


class InputError(JanusError):
    """An input file, column or row is missing or malformed (the message names it)."""


class SchemaError(InputError):
    """A table does not match the data contract in :mod:`janus_build.schemas`."""


class OutputError(JanusError):
    """The output location cannot be used (e.g. it holds something else)."""


class MissingResourceError(JanusError):
    """A model, corpus or other resource is not installed; the message says how to get it."""


class GateError(JanusError):
    """A quality gate (e.g. ``--min-label-accuracy``) fell short."""

    exit_code = 3


class RemoteError(JanusError):
    """A remote service refused the request in a way retrying cannot fix."""
