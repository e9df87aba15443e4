"""PySpark's Python daemon, importing PySpark from its installed package instead of its zip copy.

Spark starts each executor's Python workers through a daemon (``python -m pyspark.daemon``) with
``$SPARK_HOME/python/lib/pyspark.zip`` first on ``PYTHONPATH``. With a pip-installed PySpark,
``SPARK_HOME`` is the installed package itself and the zip is a copy of it, but Python keeps no
bytecode for modules imported from a zip: the daemon and every worker it forks compile PySpark's
modules again on each start (~0.45 s of each executor's first task). When the zip lies inside
the very package ``import pyspark`` finds without it, this daemon drops the zip (and the py4j zip
beside it, when the installed py4j is that version) from ``sys.path`` and runs PySpark's own
daemon; in any other layout it leaves the path alone. It also turns transparent huge pages off
for itself and the workers it forks (:func:`janus_build.core.procs.disable_transparent_huge_pages`:
each worker starts on a cold heap; 0.15 s of a 1M-caption task went to faulting in 2 MiB pages).
janus selects it with ``spark.python.daemon.module`` for local and loopback masters only (see
``spark.spark_conf``).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys


def installed_copies(path: list[str]) -> list[str]:
    """The entries of ``path`` that are zip copies of the PySpark and py4j packages installed beside them."""
    zips = [
        entry for entry in path if entry.endswith(".zip") and os.path.basename(entry).startswith(("pyspark", "py4j"))
    ]
    rest = [entry for entry in path if entry not in zips]
    found = _package_dir("pyspark", rest)
    if found is None:
        return []
    lib = os.path.join(found, "python", "lib")
    copies = [entry for entry in zips if os.path.dirname(os.path.abspath(entry)) == lib]
    if os.path.join(lib, "pyspark.zip") not in [os.path.abspath(entry) for entry in copies]:
        return []  # the zip Spark put first is not this package's: it stays
    py4j = _package_dir("py4j", rest)
    return [
        entry
        for entry in copies
        if os.path.basename(entry) == "pyspark.zip" or (py4j is not None and _py4j_matches(entry, py4j))
    ]


def _package_dir(name: str, path: list[str]) -> str | None:
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or not spec.origin or spec.origin in ("namespace", "built-in"):
        return None
    return os.path.dirname(os.path.abspath(spec.origin))


def _py4j_matches(entry: str, package: str) -> bool:
    """``py4j-0.10.9.9-src.zip`` and an installed py4j whose ``version.py`` says 0.10.9.9."""
    version = os.path.basename(entry)[len("py4j-") :].removesuffix("-src.zip")
    try:
        with open(os.path.join(package, "version.py"), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return False
    return f'"{version}"' in text or f"'{version}'" in text


def main() -> None:
    for entry in installed_copies(sys.path):
        sys.path.remove(entry)
        sys.path_importer_cache.pop(entry, None)  # else every task's invalidate_caches() re-reads the zip
    from janus_build.core.procs import disable_transparent_huge_pages

    disable_transparent_huge_pages()  # the workers this daemon forks inherit it (see the function)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
