"""The CLI's error boundary: every failure becomes one line on stderr and an exit code.

- usage errors (unknown command or option, missing option, a value of the wrong type): Click's
  usage line, a "Try ... for help" hint and one ``Error:`` line; exit 2;
- :class:`~janus_build.errors.JanusError`: ``error: <message>`` on one line; its ``exit_code``;
- :class:`OSError` from the environment (disk full, read-only, permissions, link loops...):
  ``error: <path>: <what> (<strerror>); <what to do>``; exit 1;
- anything else is a bug: ``error: internal error (<type>: <message>); the traceback is in
  <log file>``; exit 1. The log file lives in ``$XDG_STATE_HOME/janus/logs`` (default
  ``~/.local/state/janus/logs``), else in the temporary directory;
- Ctrl-C: one line saying that finished shards are kept; exit 130.

Every printed line is redacted of credentials and never wrapped, whatever the terminal width.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from janus_build.log import redact

EXIT_ENVIRONMENT = 1  # the machine refused (disk full, read-only, permissions): not the command's fault
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

_FULL = "free space or choose another --out"
_PERMISSIONS = "check its permissions or choose another path"
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("disk full", _FULL),
    errno.EROFS: ("read-only file system", "choose a writable --out"),
    errno.EACCES: ("permission denied", _PERMISSIONS),
    errno.EPERM: ("operation not permitted", _PERMISSIONS),
    errno.ENOTDIR: ("not a directory", "a part of the path is a file; check the path"),
    errno.EISDIR: ("is a directory", "give a file here"),
    errno.ELOOP: ("symbolic link loop", "fix or remove the looping link"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or lower --workers"),
    errno.ENFILE: ("too many open files", "raise the limit (ulimit -n) or lower --workers"),
    errno.EIO: ("input/output error", "check the disk; a re-run resumes after the finished shards"),
    errno.EADDRINUSE: ("address already in use", "choose another --port"),
}
if hasattr(errno, "EDQUOT"):
    _OS_ERRORS[errno.EDQUOT] = ("disk quota exceeded", _FULL)
if hasattr(errno, "ESTALE"):
    _OS_ERRORS[errno.ESTALE] = ("stale network file handle", "check the network file system and re-run")


_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SYMLINK_LOOP = re.compile(r"Symlink loop from '(.*)'$")


def one_line(text: str) -> str:
    """Redact credentials and fold a message onto one line (its line breaks become "; ")."""
    lines = [line.strip() for line in redact(str(text)).splitlines() if line.strip()]
    return "; ".join(lines)


def say(message: str, prefix: str = "error:") -> None:
    """Print ``prefix message`` to stderr as one line, never wrapped (bold red on a terminal only)."""
    from rich.text import Text

    from janus_build.cli.common import console_err

    text = Text.assemble((prefix, "bold red"), " ", one_line(message)) if prefix else Text(one_line(message))
    try:
        console_err().print(text, soft_wrap=True, highlight=False)
    except (OSError, ValueError):  # stderr itself is gone (closed pipe): nothing left to tell
        pass


def run(app: Callable[..., object], args: Sequence[str] | None = None) -> int:
    """Run the Typer ``app`` on ``args`` (default ``sys.argv[1:]``); return the exit code."""
    import typer

    from janus_build.errors import JanusError

    args = list(sys.argv[1:] if args is None else args)
    try:
        result = app(args=args, prog_name="janus", standalone_mode=False)
    except JanusError as exc:
        say(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        say("aborted")
        return 1
    except Exception as exc:
        if _is_usage_error(exc):
            return _show_usage_error(exc, app, args)
        return _unexpected(exc, args)
    # Not standalone, Typer returns the code of a typer.Exit, and 130 for a Ctrl-C it caught itself.
    if isinstance(result, int) and not isinstance(result, bool):
        return _interrupted() if result == EXIT_INTERRUPTED else result
    return 0


def _interrupted() -> int:
    say("interrupted; finished shards are kept and a re-run resumes", prefix="")
    return EXIT_INTERRUPTED


def _unexpected(exc: Exception, args: list[str]) -> int:
    os_error = _environment_error(exc)
    if os_error is not None:
        say(describe_os_error(os_error, args))
        return EXIT_ENVIRONMENT
    log = write_crash_log(exc, args)
    where = f"the traceback is in {log}" if log else "the traceback could not be saved (no writable log directory)"
    detail = one_line(str(exc))
    detail = detail if len(detail) <= 300 else detail[:297] + "..."
    say(f"internal error ({type(exc).__name__}{': ' + detail if detail else ''}); {where}")
    return EXIT_INTERNAL


def _is_usage_error(exc: BaseException) -> bool:
    # Typer vendors its own copy of Click; match either copy's ClickException by name.
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__) and hasattr(exc, "show")


def _show_usage_error(exc: Exception, app: Callable[..., object], args: list[str]) -> int:
    if getattr(exc, "ctx", False) is None:  # Click's parser omits it for e.g. "--budget" without a value
        exc.ctx = _usage_context(app, args)  # type: ignore[attr-defined]
    buffer = io.StringIO()
    exc.show(file=buffer)  # type: ignore[attr-defined]
    try:
        sys.stderr.write(redact(buffer.getvalue()))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return int(getattr(exc, "exit_code", 2))


def _usage_context(app: Callable[..., object], args: list[str]) -> object | None:
    """The Click context of the (sub)command that ``args`` name, for its usage line; None if unknown."""
    try:
        from typer.main import get_command

        command = get_command(app)  # type: ignore[arg-type]
        ctx = command.make_context("janus", [], resilient_parsing=True)
        for token in args:
            commands = getattr(ctx.command, "commands", None)
            if token.startswith("-") or not commands:
                continue
            if token not in commands:
                break
            ctx = commands[token].make_context(token, [], parent=ctx, resilient_parsing=True)
        return ctx
    except Exception:  # the usage line is a courtesy: never let it hide the error itself
        return None


def _environment_error(exc: BaseException) -> OSError | None:
    """The OSError with a known errno that is ``exc`` or, raised ``from`` it, caused it.

    Only explicit causes count: an OSError that was merely being handled when a bug struck
    (``__context__``) must not hide that bug's traceback.
    """
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _OS_ERRORS:
            return seen
        loop = _SYMLINK_LOOP.match(str(seen)) if type(seen) is RuntimeError else None
        if loop:  # pathlib.Path.resolve() before Python 3.13
            return OSError(errno.ELOOP, os.strerror(errno.ELOOP), loop.group(1))
        seen = seen.__cause__
    return None


def describe_os_error(exc: OSError, args: Sequence[str] = ()) -> str:
    """One line for an environment failure: the path, what happened and what to do."""
    what, advice = _OS_ERRORS.get(exc.errno or 0, ("system error", "check the path"))
    reason = exc.strerror or what
    if exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
    else:  # pyarrow and plain file writes do not say which file: name the output they were writing
        out = _option_value(args, "--out") if exc.errno in _WRITE_ERRORS else None
        where = f"writing --out {out}" if out else ""
    detail = f"{what} ({reason})" if reason.lower() != what else what
    return f"{where}: {detail}; {advice}" if where else f"{detail}; {advice}"


def _option_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def crash_log_dir() -> Path:
    """Where tracebacks of internal errors go: ``$XDG_STATE_HOME/janus/logs`` or ``~/.local/state/janus/logs``."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "janus" / "logs"


def write_crash_log(exc: BaseException, args: Sequence[str]) -> Path | None:
    """Write the redacted traceback to a new log file (the temp directory if the state directory
    cannot be written); return its path, or None when no file could be written."""
    from janus_build import __version__

    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"janus-{stamp}-{os.getpid()}.log"
    text = (
        f"janus-build {__version__}, python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
        f"command: janus {' '.join(args)}\n\n" + "".join(traceback.format_exception(exc))
    )
    for folder in (crash_log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(redact(text))
            return path
        except OSError:
            continue
    return None
