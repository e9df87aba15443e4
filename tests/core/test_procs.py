"""Workers die with their parent: kill -9 of a run orphans no process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PARENT = """
import os, time
from janus_build.core.procs import process_pool
def sleeper(_):
    time.sleep(120)
pool = process_pool(2)
futures = [pool.submit(sleeper, i) for i in range(2)]
time.sleep(1.0)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_of_the_parent_takes_the_workers_with_it():
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)
