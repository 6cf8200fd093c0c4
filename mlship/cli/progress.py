"""Progress of row- or byte-counting work: a rich bar for people at a terminal,
one line every `console.progress_interval` seconds (10) in a CI log or with --plain."""

from __future__ import annotations

import time
from typing import Any


class RowProgress:
    """Rows (or bytes) done, their rate and the time left, on stderr."""

    def __init__(self, console: Any, label: str, unit: str = "rows") -> None:
        self._console, self._label, self._unit = console, label, unit
        self._progress: Any = None
        self._task: Any = None
        self._lines: ProgressLines | None = None

    def __enter__(self) -> "RowProgress":
        if self._console.shows_progress:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            # markup=False: the label holds paths and target names, shown as they are.
            self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]} " + self._unit + "/s"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=self._console.err, transient=True)
            self._progress.start()
        elif self._console.logs_progress:
            self._lines = ProgressLines(self._console.info, self._label, self._unit, self._console.progress_interval)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, total_rows: int | None) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(self._label, total=total_rows, rate="-")
        elif self._lines is not None:
            self._lines.start(total_rows)

    def advance(self, rows: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, rows)
            task = self._progress.tasks[self._task]
            if task.speed:
                self._progress.update(self._task, rate=f"{task.speed:,.0f}")
        elif self._lines is not None:
            self._lines.advance(rows)


class ProgressLines:
    """`scoring: 400,000/1,000,000 rows (40%), 81,204 rows/s, 5 s, about 7 s left`, at most once per interval."""

    def __init__(self, say: Any, label: str, unit: str, interval: float) -> None:
        self._say, self._label, self._unit, self._interval = say, label, unit, interval
        self._total: int | None = None
        self._done = 0
        self._started = self._last = time.monotonic()

    def start(self, total: int | None) -> None:
        self._total = total
        self._started = self._last = time.monotonic()

    def advance(self, n: int) -> None:
        self._done += n
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._say(self.line(now - self._started))

    def line(self, elapsed: float) -> str:
        rate = self._done / elapsed if elapsed > 0 else 0.0
        # Bytes read best in MB: `pushing to cloud: 52.4/524.3 MB (10%), 35.1 MB/s, 2 s`.
        scale, unit, form = (1e6, "MB", ",.1f") if self._unit == "bytes" else (1, self._unit, ",.0f")
        text = f"{self._label}: {self._done / scale:{form}}"
        if self._total:
            text += f"/{self._total / scale:{form}} {unit} ({self._done / self._total:.0%})"
        else:
            text += f" {unit}"
        text += f", {rate / scale:{form}} {unit}/s, {elapsed:.0f} s"
        if self._total and rate > 0 and self._done < self._total:
            text += f", about {(self._total - self._done) / rate:.0f} s left"
        return text
