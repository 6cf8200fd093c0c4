"""Command groups that load on use: `mlship --help` lists every command from a
table, and a command's module is imported (and its click options built) only
when that command runs or its own help is asked for."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any, NamedTuple

import typer
import typer.main
from typer import _click as click  # typer's own copy of click: its commands are these classes
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo


class LazyCommand(NamedTuple):
    """Where a command lives and the one line `mlship --help` shows for it."""

    module: str
    attribute: str  # a command function, or a typer.Typer for a group
    short_help: str


class LazyCommands(MutableMapping):
    """Name -> click command, built from the table on first access."""

    def __init__(self, table: dict[str, LazyCommand]) -> None:
        self._table = table
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            if name not in self._table:
                raise KeyError(name)
            self._loaded[name] = load_command(name, self._table[name])
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("commands come from the table")

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (n for n in self._loaded if n not in self._table)

    def __len__(self) -> int:
        return len(set(self._table) | set(self._loaded))


def load_command(name: str, entry: LazyCommand) -> click.Command:
    """Import the command's module and build its click command (plain help, as the root's)."""
    target: Any = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group_from_info(TyperInfo(target, name=name), pretty_exceptions_short=True,
                                              suggest_commands=True, rich_markup_mode=None)
    return typer.main.get_command_from_info(CommandInfo(name=name, callback=target),
                                            pretty_exceptions_short=True, rich_markup_mode=None)


class LazyGroup(TyperGroup):
    """The root group: commands from `TABLE` (set by a subclass), help rows without imports."""

    TABLE: dict[str, LazyCommand] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.TABLE)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Command names (with their help line) from the table, without importing a module; then options."""
        from typer._click.shell_completion import CompletionItem

        names = [CompletionItem(name, help=entry.short_help) for name, entry in self.TABLE.items()
                 if name.startswith(incomplete)]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.TABLE)
        rows = [(name, make_default_short_help(entry.short_help, limit)) for name, entry in self.TABLE.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
