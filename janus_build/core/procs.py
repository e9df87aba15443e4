"""Worker processes that die with their parent.

``kill -9`` of a janus run must not leave workers running (they would keep writing into a
directory the next run resumes). On Linux every worker asks the kernel for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``); elsewhere workers poll their parent's pid.
:func:`call_in_process_group` covers libraries that start processes of their own
(img2dataset): the whole process group goes when the call ends or the parent dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_THP_DISABLE = 41
_PR_GET_THP_DISABLE = 42


def die_with_parent() -> None:
    """Arrange for this (worker) process to be killed when its parent exits or is killed."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    if not sys.platform.startswith("linux"):
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def disable_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process and the processes it forks (Linux); True when off.

    For worker processes that start on a cold heap: Arrow's allocator (mimalloc) advises its
    1 GiB arena for huge pages, so a fresh worker's first touches of it fault in 2 MiB pages,
    each zeroed and, on a fragmented machine, compacted for first. Two workers doing that at
    once cost about 0.1 s of kernel time each, more than huge pages save them over a shard.
    Only call it in processes janus owns: the setting is process-wide.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
        return libc.prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _initialise(user_init: Callable[..., Any] | None, args: tuple[Any, ...]) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if user_init is not None:
        user_init(*args)


def pool_context() -> Any:
    """The multiprocessing context of :func:`process_pool`'s workers: fork where the platform
    allows (cheap start, no re-import, the parent's state inherited), else spawn."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()) -> Any:
    """A ``ProcessPoolExecutor`` whose workers die with this process and ignore Ctrl-C.

    Workers start in :func:`pool_context`; the caller holds no threads of its own when it
    calls this.
    """
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(),
        initializer=_initialise,
        initargs=(initializer, initargs),
    )


_GROUP_CHILD = "from janus_build.core.procs import _group_child; _group_child()"


def call_in_process_group(
    func: Callable[..., Any], args: tuple[Any, ...] = (), *, log_path: str | os.PathLike[str] | None = None
) -> None:
    """Call ``func(*args)`` in a fresh Python process leading its own process group, and wait.

    For libraries that start processes janus cannot configure (img2dataset's spawned pool and
    logger): every process the child starts joins its group, and the whole group is SIGKILLed
    when the call ends (normally, by an exception, or by Ctrl-C here) and when this process dies
    (the child watches its parent, so ``kill -9`` of a run leaves nothing running). The group
    is its own session, so a terminal's Ctrl-C reaches only this process, which then ends it.

    Args:
        func: a module-level function (pickled by reference; the child imports its module).
        args: picklable arguments.
        log_path: where the group's stdout and stderr go (appended); None discards them.

    Raises:
        ChildProcessError: the child exited non-zero (its traceback is in ``log_path``).
    """
    import pickle
    import subprocess

    payload = pickle.dumps((func, tuple(args), os.getpid()))
    sink = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _GROUP_CHILD],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path is not None:
            sink.close()  # type: ignore[union-attr]
    try:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(payload)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        if hasattr(os, "waitid"):  # wait without reaping, so the group id cannot be reused before killpg
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, signal.SIGKILL)
            else:  # pragma: no cover - no process groups (Windows): the child alone
                proc.kill()
        code = proc.wait()
    if code != 0:
        where = f"; see {log_path}" if log_path is not None else ""
        raise ChildProcessError(f"{getattr(func, '__qualname__', func)} exited with status {code}{where}")


def _group_child() -> None:
    import pickle

    func, args, parent = pickle.load(sys.stdin.buffer)
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    if os.getppid() != parent:  # the parent died before we started watching
        os._exit(1)
    threading.Thread(target=_kill_group_when_orphaned, args=(parent,), daemon=True).start()
    code = 0
    try:
        func(*args)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # Exit at once: interpreter shutdown would wait for whatever the library left running
    # (multiprocessing joins its children); the parent kills the whole group next anyway.
    os._exit(code)


def _kill_group_when_orphaned(parent: int, poll: float = 0.2) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(poll)
    if hasattr(os, "killpg"):
        os.killpg(0, signal.SIGKILL)
    os._exit(1)  # pragma: no cover - no process groups
