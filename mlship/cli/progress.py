"""A rich progress bar for row-counting work (silent without a terminal)."""

from __future__ import annotations

from typing import Any


class RowProgress:
    """Rows done, rows/s and ETA on stderr when a person is watching."""

    def __init__(self, console: Any, label: str, unit: str = "rows") -> None:
        self._console, self._label, self._unit = console, label, unit
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "RowProgress":
        if self._console.shows_progress:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            # markup=False: the label holds paths and target names, shown as they are.
            self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]} " + self._unit + "/s"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=self._console.err, transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, total_rows: int | None) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(self._label, total=total_rows, rate="-")

    def advance(self, rows: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, rows)
            task = self._progress.tasks[self._task]
            if task.speed:
                self._progress.update(self._task, rate=f"{task.speed:,.0f}")
