"""Helpers shared by the CLI modules: one console, and errors that end with a clear message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., object])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` in red to stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's user-facing exceptions into a one-line message and exit code 2.

    ValueError subclasses (ConfigError, RegistryError's KeyError, FileNotFoundError...)
    carry messages that name the fix; tracebacks are for bugs.
    """
    from robustperf.registry import RegistryError

    try:
        yield
    except (ValueError, RegistryError, FileNotFoundError, NotADirectoryError) as exc:
        fail(str(exc))
