"""Workers die with their parent: kill -9 of a run orphans no process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

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


GROUP_PARENT = """
import subprocess, sys
from janus_build.core.procs import call_in_process_group
call_in_process_group(subprocess.run, (["sh", "-c", "sleep 300 & echo $! > " + sys.argv[1] + "; wait"],))
"""


def _pid_from(path, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def _gone(pid, timeout=10.0):
    deadline = time.time() + timeout
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_kill_9_of_the_parent_takes_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    proc = subprocess.Popen([sys.executable, "-c", GROUP_PARENT, str(pidfile)])
    grandchild = _pid_from(pidfile)
    assert _alive(grandchild)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone(grandchild)


def test_processes_left_behind_die_when_the_call_returns(tmp_path):
    from janus_build.core.procs import call_in_process_group

    pidfile = tmp_path / "bg.pid"
    call_in_process_group(subprocess.run, (["sh", "-c", f"sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}"],))
    assert _gone(_pid_from(pidfile))


def test_a_failing_call_raises_and_its_output_goes_to_the_log(tmp_path):
    import pytest

    from janus_build.core.procs import call_in_process_group

    log = tmp_path / "child.log"
    call_in_process_group(subprocess.run, (["sh", "-c", "echo progress-bar >&2"],), log_path=log)
    assert "progress-bar" in log.read_text()
    with pytest.raises(ChildProcessError, match="child.log"):
        call_in_process_group(os.kill, (0, 999), log_path=log)  # an invalid signal: the child raises
    assert "Traceback" in log.read_text()


THP_PROBE = """
import json, os
from janus_build.core.procs import disable_transparent_huge_pages

def thp():
    with open("/proc/self/status") as handle:
        return next((line.split()[1] for line in handle if line.startswith("THP_enabled:")), None)

before = thp()
turned_off = disable_transparent_huge_pages()
child_read, child_write = os.pipe()
if os.fork() == 0:  # a process forked afterwards (a worker) inherits the setting
    os.write(child_write, (thp() or "").encode())
    os._exit(0)
os.wait()
print(json.dumps({"before": before, "returned": turned_off, "after": thp(), "forked": os.read(child_read, 8).decode()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_THP_DISABLE) is Linux's")
def test_huge_pages_go_off_for_the_calling_process_and_its_forks_only(thp_status):
    if thp_status() is None:
        pytest.skip("this kernel's /proc/self/status has no THP_enabled line")
    done = subprocess.run([sys.executable, "-c", THP_PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen == {"before": "1", "returned": True, "after": "0", "forked": "0"}
    assert thp_status() == "1"  # the test process itself (another process) is untouched
