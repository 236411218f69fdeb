"""Helpers shared by the CLI modules: one console, and errors that end with a clear message."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import typer
from rich.console import Console

# soft_wrap: a long line is left for the terminal to wrap, never broken by rich in the middle of a number
# (issue 27: piped output was hard-wrapped at 80 columns); piped tables get 160 columns unless COLUMNS says
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 160)))
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., object])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` in red to stderr, on one line (no wrapping, no markup read from it), and exit non-zero."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


_DEBUG = False  # set by the root `--debug` option: errors re-raise with their traceback


def set_debug(on: bool) -> None:
    global _DEBUG
    _DEBUG = on


_OS_FIXES = {
    errno.EACCES: "check its permissions, or pass a directory you can write with --runs-dir",
    errno.EPERM: "check its permissions, or pass a directory you can write with --runs-dir",
    errno.EROFS: "the file system is read-only: pass a writable directory with --runs-dir",
    errno.ENOSPC: "the disk is full: free some space, or pass a directory on another disk with --runs-dir",
    errno.EDQUOT: "the disk quota is used up: free some space, or pass another --runs-dir",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
    errno.EISDIR: "the path is a directory: give a file",
}


def os_error_message(exc: OSError) -> str:
    """One line naming the path, the error and the fix, e.g. "cannot write runs/x/result.json: ..."."""
    path = exc.filename if exc.filename is not None else "(unknown path)"
    what = exc.strerror or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or -1, "check the path and the disk, and run again (--debug shows the traceback)")
    return f"{path}: {what}: {fix}"


def one_line(exc: BaseException) -> str:
    """The user-facing message of a library error, as one line."""
    import sqlite3

    import yaml

    from robustperf.store.lock import RunLockedError

    if isinstance(exc, RunLockedError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:  # from the OS (ours carry a message and no errno)
        return os_error_message(exc)
    if isinstance(exc, sqlite3.Error):
        return (f"the run index (index.sqlite) failed: {exc}; it is disposable: delete it and run "
                "`robustperf runs reindex --runs-dir DIR`")
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {str(exc).splitlines()[0]}"
    return " ".join(str(exc).split("\n")) if str(exc) else type(exc).__name__


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's user-facing exceptions into a one-line message and exit code 2.

    ValueError subclasses (ConfigError, DamagedFileError, RegistryError's KeyError, FileNotFoundError...)
    carry messages that name the fix; a held run lock, an OSError (read-only, full disk, permissions),
    an SQLite or a YAML error become one line naming the path and the fix. ``robustperf --debug CMD``
    re-raises instead, with the traceback; tracebacks are for bugs.
    """
    import sqlite3

    import yaml

    from robustperf.registry import RegistryError
    from robustperf.store.lock import RunLockedError

    try:
        yield
    except (ValueError, RegistryError, OSError, RunLockedError, sqlite3.Error, yaml.YAMLError) as exc:
        if _DEBUG:
            raise
        fail(one_line(exc), code=3 if isinstance(exc, RunLockedError) else 2)
