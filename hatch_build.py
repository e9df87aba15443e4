"""Build hook: compile janus_build/match/_tokens.c into _tokens.so with the system C compiler.

The library is optional. Without a compiler (or with ``JANUS_NATIVE=0`` at install) the build
warns and goes on, and ``janus match`` uses its numpy + Arrow tokeniser, which gives the same
labels more slowly (janus_build/match/native.py). An editable install compiles the library
beside its source; a wheel carries it and is tagged for the platform.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("janus_build") / "match" / "_tokens.c"
TARGET = "janus_build/match/_tokens.so"


def compile_library(source: Path, target: Path) -> str | None:
    """Compile ``source`` into the shared library ``target``; returns why not, or None."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    command = [*compiler, "-O3", "-shared", "-fPIC", "-o", os.fspath(target), os.fspath(source)]
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
        if version == "editable":  # the package is imported from the source tree
            target = root / TARGET
        else:
            target = Path(tempfile.mkdtemp(prefix="janus-build-")) / "_tokens.so"
        failure = compile_library(root / SOURCE, target)
        if failure is not None:
            self.app.display_warning(
                f"janus-build: the compiled tokeniser was not built ({failure}); "
                "janus match will use its slower pure-Python path"
            )
            return
        if version != "editable":
            build_data["force_include"][os.fspath(target)] = TARGET
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
