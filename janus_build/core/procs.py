"""Worker processes that die with their parent.

``kill -9`` of a janus run must not leave workers running (they would keep writing into a
directory the next run resumes). On Linux every worker asks the kernel for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``); elsewhere workers poll their parent's pid.
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


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()) -> Any:
    """A ``ProcessPoolExecutor`` whose workers die with this process and ignore Ctrl-C.

    Workers are forked where the platform allows (cheap start, no re-import); the caller
    holds no threads of its own when it calls this.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_initialise,
        initargs=(initializer, initargs),
    )
