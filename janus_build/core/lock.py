"""An exclusive, crash-safe lock per stage directory (``flock``: the kernel drops it when the
holder exits or is killed, so a stale lock never needs clearing by hand)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path

from janus_build.errors import OutputError

# Locks this process holds: {lock path: (fd, owner)}. A second StageDir on the same directory in
# the same process (a library user retrying after an exception) takes the lock over instead of
# failing against itself; the lock guards against other processes.
_HELD: dict[str, tuple[int, object]] = {}


class StageLock:
    """Hold ``path`` (a ``_lock`` file) exclusively; the file names the holder for the message."""

    def __init__(self, path: str | os.PathLike[str], directory: str | os.PathLike[str], what: str) -> None:
        self.path = Path(path)
        self.directory = Path(directory)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputError` naming the run that holds it."""
        import fcntl

        if self._fd is not None:
            return
        key = os.fspath(self.path.resolve())
        if key in _HELD:
            self._fd = _HELD[key][0]
            _HELD[key] = (self._fd, self)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise OutputError(
                f"--out {self.directory}: another janus run is writing here ({holder}); "
                "wait for it to finish, stop it, or choose another --out"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.set_inheritable(fd, False)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])[:300],
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        _HELD[key] = (fd, self)

    def _holder(self, fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "holder unknown"
        return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('started')}: {info.get('command')!r}"

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is None:
            return
        key = os.fspath(self.path.resolve())
        fd, self._fd = self._fd, None
        if _HELD.get(key, (None, None))[1] is not self:
            return  # another object in this process took the lock over
        del _HELD[key]
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
