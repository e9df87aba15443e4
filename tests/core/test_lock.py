"""One run per stage directory: a second process is refused with the holder's pid; death releases the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from janus_build.core.stage import StageDir
from janus_build.errors import OutputError

HOLD = """
import sys, time
from dataclasses import dataclass
from janus_build.core.stage import StageDir
@dataclass(frozen=True)
class Cfg:
    strategy: str = "sc"
stage = StageDir(sys.argv[1], "match", Cfg())
print("locked", flush=True)
time.sleep(60)
"""


@dataclass(frozen=True)
class Cfg:
    strategy: str = "sc"


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_naming_the_holder(tmp_path):
    proc = _holder(tmp_path / "out")
    try:
        with pytest.raises(OutputError, match=rf"another janus run is writing here \(pid {proc.pid} "):
            StageDir(tmp_path / "out", "match", Cfg(strategy="strict"))
        manifest = (tmp_path / "out" / "_manifest.json").read_text()
        assert '"strict"' not in manifest  # the refused run changed nothing
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_releases_the_lock(tmp_path):
    proc = _holder(tmp_path / "out")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while True:  # the kernel drops an flock when the holder dies
        try:
            stage = StageDir(tmp_path / "out", "match", Cfg())
            break
        except OutputError:
            assert time.time() < deadline
            time.sleep(0.05)
    assert stage.lock.held
    stage.finish()
    assert not stage.lock.held


def test_same_process_reopen_takes_the_lock_over(tmp_path):
    first = StageDir(tmp_path, "match", Cfg())  # e.g. a library user retrying after an exception
    second = StageDir(tmp_path, "match", Cfg())
    first.close()  # no longer the owner: must not release the second's lock
    assert second.lock.held
    second.close()
