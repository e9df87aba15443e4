"""Rich rendering shared by the commands: consoles, a progress adapter, a log handler."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from rich.console import Console

from janus_build.progress import Progress


@cache
def console() -> Console:
    return Console()


@cache
def console_err() -> Console:
    return Console(stderr=True)


def rich_log_handler() -> logging.Handler:
    from rich.logging import RichHandler

    handler = RichHandler(console=console_err(), show_path=False, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return handler


class RichProgress(Progress):
    """Renders library progress events as Rich progress bars (one per task) with a rate column."""

    def __init__(self, unit_rate: str = "items") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as _Bars,
        )

        self._bars = _Bars(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console_err(),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._units: dict[str, str] = {}

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        self._units[task] = unit
        if task in self._tasks:  # a task started again (e.g. a second training run) counts afresh
            self._bars.reset(self._tasks[task], total=total)
        else:
            self._tasks[task] = self._bars.add_task(task, total=total, rate="")

    def advance(self, task: str, amount: int = 1) -> None:
        if task not in self._tasks:
            self.start(task)
        task_id = self._tasks[task]
        self._bars.advance(task_id, amount)
        speed = self._bars._tasks[task_id].speed
        rate = f"{speed:,.0f} {self._units[task]}/s" if speed else ""
        self._bars.update(task_id, rate=rate)

    def finish(self, task: str) -> None:
        if task in self._tasks:
            task_id = self._tasks[task]
            state = self._bars._tasks[task_id]
            if state.total is None:
                self._bars.update(task_id, total=state.completed)


def parse_int_list(value: str | None, flag: str) -> list[int] | None:
    """Parse ``"1,2,3"`` into ints, naming the flag on error."""
    from janus_build.errors import ConfigError

    if value is None or value == "":
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {value!r}") from None
