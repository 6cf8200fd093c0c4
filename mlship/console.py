"""The single output object: rich for people, one JSON document for machines.

Commands never print directly. They hand a result (a JSON-able dict) and a
render function to `Console.result`; errors and notes go through `error`,
`warn` and `info`. Tests build a Console over StringIO buffers.

Markup rule: `info`, `warn`, `debug`, `error` and `status` take plain text and
print it exactly as given (a path like `z[red]q.csv` stays itself). Render
functions handed to `result` get a rich console that reads markup, so every
string that comes from a model, a file, a target or a user reaches it as a
`rich.text.Text` (`plain(...)`, `Text.assemble`) or in a line printed with
`out.print(line, markup=False)`. Emoji codes (`:smile:`) are off everywhere.

Logs: when stdout is not a terminal (or with `--plain`), tables print as
aligned plain text that is never wrapped or cut: a column too wide for
`COLUMNS` leaves the grid and its values print whole on their own lines under
each row (`plain_table`). Colours are off with `--plain`.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Callable, ContextManager

if TYPE_CHECKING:
    from rich.console import Console as RichConsole


class Console:
    """Where every command writes.

    json: print exactly one JSON document on stdout (the result, or the error).
    quiet: print nothing but errors. verbose: tracebacks and debug notes.
    """

    def __init__(
        self,
        *,
        json_output: bool = False,
        quiet: bool = False,
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        stdin: IO[str] | None = None,
        plain_output: bool = False,
        progress_interval: float = 10.0,
    ) -> None:
        self.json_output = json_output
        self.quiet = quiet
        self.verbose = verbose
        self.plain_output = plain_output
        self.progress_interval = progress_interval  # seconds between progress lines without a terminal
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or _encodable(sys.stdout)
        self._stderr = stderr or _encodable(sys.stderr)
        self.emitted_result = False

    # rich.console costs ~20 ms to import: only pay for it when printing.
    @cached_property
    def out(self) -> "RichConsole":
        """Rich console over stdout (results)."""
        return _rich_console(self._stdout, plain_output=self.plain_output)

    @cached_property
    def err(self) -> "RichConsole":
        """Rich console over stderr (notes, warnings, errors, progress)."""
        return _rich_console(self._stderr, plain_output=self.plain_output)

    @property
    def interactive(self) -> bool:
        """True when a person can answer a prompt (stdin is a TTY)."""
        return bool(getattr(self._stdin, "isatty", lambda: False)())

    @property
    def shows_progress(self) -> bool:
        """Progress bars only for people watching a terminal."""
        return not (self.json_output or self.quiet or self.plain_output) and self.err.is_terminal

    @property
    def logs_progress(self) -> bool:
        """Periodic one-line progress instead of bars: a CI log, a file, --plain."""
        return not (self.json_output or self.quiet or self.shows_progress)

    def result(self, data: dict[str, Any], render: Callable[["RichConsole"], None]) -> None:
        """Emit a command's result: `data` as JSON, or `render` for people."""
        self.emitted_result = True
        if self.json_output:
            self._stdout.write(_dumps(data, indent=2) + "\n")
            self._stdout.flush()
        elif not self.quiet:
            render(self.out)

    def document(self, data: dict[str, Any]) -> None:
        """Emit a command's result as one JSON document on stdout, whatever the output
        mode (a command's own `--json-out -`, as `drift` has)."""
        self.emitted_result = True
        self._stdout.write(_dumps(data, indent=2) + "\n")
        self._stdout.flush()

    def info(self, message: str) -> None:
        """A note for people (stderr, plain text); hidden by --quiet and --json."""
        if not (self.quiet or self.json_output):
            self.err.print(plain(message))

    def debug(self, message: str) -> None:
        """A note shown only with --verbose."""
        if self.verbose:
            self.err.print(plain(message, "dim"))

    def warn(self, message: str) -> None:
        """A warning (stderr, plain text); hidden by --quiet."""
        if not self.quiet:
            self.err.print(_labelled("warning:", "yellow", one_line(message)))

    def error(self, message: str, *, exit_code: int) -> None:
        """Report a failure: one line on stderr, plus a JSON error document
        on stdout in --json mode when no result was printed."""
        self.err.print(_labelled("error:", "red", one_line(message)))
        if self.json_output and not self.emitted_result:
            doc = {"error": {"message": message, "exit_code": exit_code}}
            self._stdout.write(_dumps(doc) + "\n")
            self._stdout.flush()

    def traceback(self) -> None:
        """Print the current exception's traceback (used with --verbose)."""
        self.err.print_exception(show_locals=False)

    def status(self, message: str) -> ContextManager[Any]:
        """A spinner for short waits, only on an interactive terminal; the
        message, and any text given to its `update`, is plain text."""
        if self.shows_progress:
            return _PlainStatus(self.err.status(plain(message)))
        return nullcontext()


class _PlainStatus:
    """A rich Status whose `update` takes plain text (build logs, tags)."""

    def __init__(self, status: Any) -> None:
        self._status = status

    def __enter__(self) -> "_PlainStatus":
        self._status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._status.__exit__(*exc)

    def update(self, text: str) -> None:
        self._status.update(plain(text))


# Control characters from untrusted text (ESC sequences that recolour, move the
# cursor or retitle the terminal; CR that overwrites a line) are shown as \xNN.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]}


def visible(text: str) -> str:
    """`text` with terminal control characters shown as `\\xNN` (tab and newline kept)."""
    return text.translate(_CONTROLS)


def one_line(text: str) -> str:
    """`text` on one line: line breaks inside it (from a path, a name, a library's message) shown as \\n."""
    return text.strip("\n").replace("\n", "\\n")  # CR and other controls: \\xNN by `visible`


def _encodable(stream: IO[str]) -> IO[str]:
    """A real stream whose encoding cannot show every character (LANG=C on an old system, a
    PYTHONIOENCODING=latin-1 job) writes what it cannot encode as \\uXXXX instead of failing midway."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8", "utf-16", "utf-32") and getattr(stream, "errors", "") == "strict" \
            and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # a stream that has been read or written in an incompatible way
            pass
    return stream


def _environ() -> dict[str, str]:
    """os.environ for rich, without a COLUMNS or LINES that is not a positive number (rich
    took COLUMNS=0 as a width of 0 and printed nothing at all)."""
    import os

    env = dict(os.environ)
    for name in ("COLUMNS", "LINES"):
        value = env.get(name)
        if value is not None and not (value.isdigit() and 0 < int(value) < 100_000):
            del env[name]
    return env


def _rich_console(file: IO[str], plain_output: bool = False) -> "RichConsole":
    """A rich console whose strings never carry terminal control sequences:
    every str it renders (lines, table cells) passes through `visible`; without
    a terminal (or with --plain) its tables print as `plain_table`."""
    from rich.console import Console as RichConsole

    class _Console(RichConsole):
        def render_str(self, text: str, **kwargs: Any) -> Any:
            return super().render_str(visible(text), **kwargs)

        def print(self, *objects: Any, **kwargs: Any) -> None:
            if plain_output or not self.is_terminal:
                objects = tuple(plain_table(o, self) if _is_table(o) else o for o in objects)
            super().print(*objects, **kwargs)

    extra: dict[str, Any] = {"color_system": None} if plain_output else {}
    return _Console(file=file, highlight=False, soft_wrap=True, emoji=False, _environ=_environ(), **extra)


def _is_table(value: object) -> bool:
    table = sys.modules.get("rich.table")  # no table was made when rich.table was never imported
    return table is not None and isinstance(value, table.Table)


def plain_table(table: Any, console: "RichConsole") -> Any:
    """A rich Table as aligned plain text: title, header, one line per row, caption.

    Nothing is wrapped or cut. While the grid is wider than the console
    (COLUMNS), its widest column (never the first) leaves it, and that column's
    values print whole under each row as `    header: value`."""
    from rich.cells import cell_len
    from rich.text import Text

    headers = [_cell_text(c.header, console) for c in table.columns]
    rows = [[_cell_text(cell, console) for cell in row] for row in zip(*(c._cells for c in table.columns))]
    natural = [max([cell_len(line) for v in [h, *(r[i] for r in rows)] for line in v.split("\n")] or [0])
               for i, h in enumerate(headers)]
    grid = list(range(len(headers)))
    while len(grid) > 1 and sum(natural[i] for i in grid) + 2 * (len(grid) - 1) > console.width:
        grid.remove(max(grid[1:], key=lambda i: natural[i]))
    detached = [i for i in range(len(headers)) if i not in grid]
    right = {i for i, c in enumerate(table.columns) if c.justify == "right"}

    def line(cells: list[str]) -> str:
        parts = [cells[i].rjust(natural[i]) if i in right else cells[i].ljust(natural[i]) for i in grid]
        return "  ".join(parts).rstrip()

    out: list[str] = []
    if table.title:
        out.append(_cell_text(table.title, console))
    if table.show_header and any(headers):
        out.append(line(headers))
    for row in rows:
        height = max(len(row[i].split("\n")) for i in grid)
        split = [row[i].split("\n") for i in range(len(row))]
        for k in range(height):
            out.append(line([split[i][k] if k < len(split[i]) else "" for i in range(len(row))]))
        out.extend(f"    {headers[i] + ': ' if headers[i] else ''}{row[i]}".replace("\n", "\n      ")
                   for i in detached if row[i])
    if table.caption:
        out.append(_cell_text(table.caption, console))
    return Text("\n".join(out))


def _cell_text(cell: Any, console: "RichConsole") -> str:
    """What a cell shows, as plain text (markup read as rich would, control characters visible;
    a tab as \\t, since the terminal would widen it past the column)."""
    if isinstance(cell, str):
        text = console.render_str(cell).plain
    elif hasattr(cell, "plain"):
        text = visible(cell.plain)
    else:
        text = visible(str(cell))
    return text.replace("\t", "\\t")


def plain(value: object, style: str = "") -> Any:
    """`value` as a rich Text: printed exactly, never read as markup or as
    terminal control sequences."""
    from rich.text import Text

    return Text(visible(str(value)), style=style)


def _labelled(label: str, style: str, message: str) -> Any:
    from rich.text import Text

    return Text.assemble((label, style), " ", visible(message))


def _dumps(data: Any, indent: int | None = None) -> str:
    import json  # only when a document is printed: `mlship --help` prints none

    return json.dumps(data, indent=indent, default=_jsonable)


def _jsonable(value: Any) -> Any:
    """Fallback for json.dumps: numpy scalars, paths, pydantic models."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
