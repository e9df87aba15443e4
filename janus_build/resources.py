"""Locate the data shipped with janus-build (label sets, term sets, queries, samples)."""

from __future__ import annotations

from pathlib import Path

from janus_build.errors import MissingResourceError

_PACKAGE = Path(__file__).resolve().parent


def project_dir(name: str) -> Path:
    """Return the shipped top-level data folder ``name`` (``classnames`` or ``queries``).

    In a wheel these folders are bundled under ``janus_build/_bundled/``; in a source checkout
    (editable install) they are read from the repository root.
    """
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise MissingResourceError(f"the janus-build installation lacks its '{name}/' data folder; reinstall the package")


def package_data(name: str) -> Path:
    """Return a file under ``janus_build/data/``."""
    path = _PACKAGE / "data" / name
    if not path.exists():
        raise MissingResourceError(f"the janus-build installation lacks janus_build/data/{name}; reinstall the package")
    return path
