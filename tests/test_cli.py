"""The command line: help answers without importing heavy libraries; user errors are one line."""

from __future__ import annotations

import subprocess
import sys


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from janus_build.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'pyspark', 'flickrapi', 'pandas', 'img2dataset') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "janus_build", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("janus-build ")
