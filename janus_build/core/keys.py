"""The one key rule: how sample keys are made, checked and split from webdataset member names.

A key is the webdataset ``__key__`` and the ``key`` column of every stage (stages join on it).
webdataset splits a member name at the first ``.`` of its base name (``a/b.c.jpg`` is key
``a/b``, extension ``c.jpg``), so janus keys hold neither ``.`` nor ``/``.

Keys made from paths use an injective escape, so distinct paths always give distinct keys:
letters, digits and ``-`` stand as they are; ``/`` becomes ``__``; ``_`` becomes ``_u``; any
other byte of the UTF-8 name becomes ``_xHH``. ``lion/lion_000.jpg`` is ``lion__lion_u000``.
"""

from __future__ import annotations

import re

from janus_build.errors import InputError

_PLAIN = re.compile(r"[A-Za-z0-9-]")
_VALID = re.compile(r"[^./\s]+")


def split_member(name: str) -> tuple[str, str]:
    """``(key, extension)`` of a tar member name by webdataset's rule; the extension lower-cased.

    A directory part is dropped from the key (janus shards are flat; a key is never a path).
    """
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext.lower()


def check_key(key: str, where: str) -> str:
    """Return ``key`` if it is usable as a webdataset key, else raise :class:`InputError`."""
    if not key or not _VALID.fullmatch(key):
        raise InputError(f"{where}: key {key!r} is not usable (empty, or holds '.', '/' or white space)")
    return key


def escape_component(text: str) -> str:
    """Injectively escape ``text`` into key characters (see the module docstring)."""
    out = []
    for char in text:
        if _PLAIN.fullmatch(char):
            out.append(char)
        elif char == "/":
            out.append("__")
        elif char == "_":
            out.append("_u")
        else:
            out.extend(f"_x{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def strip_extension(relative_path: str) -> str:
    """``a/b.c.jpg`` -> ``a/b.c`` (the last extension only)."""
    head, slash, base = relative_path.rpartition("/")
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    return f"{head}{slash}{stem}"


def path_key(prefix: str, relative_path: str, *, keep_extension: bool = False) -> str:
    """The key of a file at ``relative_path`` (POSIX, relative to its input root).

    Distinct relative paths give distinct keys (the extension is dropped unless
    ``keep_extension``, so ``a.jpg`` and ``a.png`` in one folder need ``keep_extension``).
    """
    path = relative_path if keep_extension else strip_extension(relative_path)
    body = escape_component(path)
    return f"{escape_component(prefix)}-{body}" if prefix else body


def row_key(file_key: str, row: int) -> str:
    """The key of row ``row`` of an input file whose path key is ``file_key``."""
    return f"{file_key}-{row}"


def dedup_id(source: str, source_id: str) -> str:
    """A de-duplication id namespaced by source: two sources' ids never collide."""
    return f"{source}\x1f{source_id}"
