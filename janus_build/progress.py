"""How library code reports progress without knowing about terminals (the CLI renders it)."""

from __future__ import annotations


class Progress:
    """Receives progress from a running stage. The default implementation ignores everything.

    A stage calls :meth:`start` once per task (e.g. per input shard set or per class), then
    :meth:`advance` as work completes. The CLI passes a Rich-backed subclass.
    """

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        """Begin (or re-total) a task of ``total`` units; ``None`` when unknown."""

    def advance(self, task: str, amount: int = 1) -> None:
        """Record ``amount`` more units done on ``task``."""

    def finish(self, task: str) -> None:
        """The task is complete."""


NULL_PROGRESS = Progress()
