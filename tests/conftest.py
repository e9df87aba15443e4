"""Shared fixtures: the real LAION sample from ../shared, temporary stage directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory):
    """Tests never touch the user's janus cache; the Spark JVM archive is off unless a test turns it on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JANUS_CACHE_DIR", str(tmp_path_factory.mktemp("janus-cache")))
        patch.setenv("JANUS_SPARK_CDS", "0")
        yield


def _thp_status() -> str | None:
    """This process's ``THP_enabled`` ("1" or "0"); None off Linux or where the kernel has no such line."""
    if not os.path.exists("/proc/self/status"):
        return None
    with open("/proc/self/status") as handle:
        return next((line.split()[1] for line in handle if line.startswith("THP_enabled:")), None)


@pytest.fixture(scope="session")
def thp_status():
    """Reads the calling process's transparent-huge-pages setting (a function: call it in a worker)."""
    return _thp_status


@pytest.fixture(scope="session")
def laion_sample() -> Path:
    """The 1,000 real LAION rows (URL, TEXT) kept in ../shared/data (never copied here)."""
    path = SHARED / "data" / "laion_sample_1000.parquet"
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {path} (../shared beside the checkout)")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def janus_facts() -> Path:
    path = SHARED / "janus-facts"
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {path}")
        pytest.skip(f"{path} not present")
    return path
