"""Build hook: compile janus_build/match/_tokens.c into _tokens.so with the system C compiler.

The Unicode table it includes is generated first, from this Python's ``unicodedata``
(janus_build/match/unicode_table.py).

The library is optional. Without a compiler (or with ``JANUS_NATIVE=0`` at install) the build
warns and goes on, and ``janus match`` uses its numpy + Arrow tokeniser, which gives the same
labels more slowly (janus_build/match/native.py). An editable install compiles the library
beside its source; a wheel carries it and is tagged for the platform.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("janus_build") / "match" / "_tokens.c"
GENERATOR = Path("janus_build") / "match" / "unicode_table.py"
TARGET = "janus_build/match/_tokens.so"


def unicode_table(root: Path, directory: Path) -> list[str]:
    """Generate ``_unicode_table.h`` into ``directory``: the compiler flags that include it."""
    spec = importlib.util.spec_from_file_location("janus_unicode_table", root / GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # by path: the package's __init__ needs what is not installed yet
    module.write(directory / "_unicode_table.h")
    return ["-DJANUS_UNICODE_TABLE", f"-I{directory}"]


def compile_library(source: Path, target: Path, flags: list[str] = ()) -> str | None:
    """Compile ``source`` into the shared library ``target``; returns why not, or None."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    command = [*compiler, "-O3", "-shared", "-fPIC", *flags, "-o", os.fspath(target), os.fspath(source)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"{compiler[0]}: {exc.strerror or exc}"
    if done.returncode:
        return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return None


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.environ.get("JANUS_NATIVE", "1") == "0":
            return
        root = Path(self.root)
        scratch = Path(tempfile.mkdtemp(prefix="janus-build-"))
        target = root / TARGET if version == "editable" else scratch / "_tokens.so"  # editable: beside the source
        try:
            flags = unicode_table(root, scratch)
        except Exception as exc:  # the library still builds, for ASCII captions
            self.app.display_warning(f"janus-build: no Unicode table ({exc}); non-ASCII captions take the Arrow path")
            flags = []
        failure = compile_library(root / SOURCE, target, flags)
        if version == "editable":  # the header was only needed to compile
            shutil.rmtree(scratch, ignore_errors=True)
        if failure is not None:
            self.app.display_warning(
                f"janus-build: the compiled matcher was not built ({failure}); "
                "janus match will use its slower numpy + Arrow path"
            )
            return
        if version != "editable":
            build_data["force_include"][os.fspath(target)] = TARGET
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
