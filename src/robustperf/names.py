"""Names are data: the safe pattern for study and run names, and paths that stay inside the runs directory.

A study or run name becomes a directory or file name (``runs/studies/<name>.json``,
``runs/reports/<name>/``, ``runs/manifests/<name>/``, ``runs/<run_id>/``) and a scheduler job name, so it
must not be able to leave the runs directory or start a new shell line. The rule, checked before
anything is written:

    letters, digits, ``-``, ``_`` and ``.``; starting with a letter or a digit; at most 100 characters

(`SAFE_NAME`), which rules out ``..``, ``/``, absolute paths, NUL, newlines, spaces and quotes. Every
path built from a name goes through `path_under`, which resolves it (symbolic links included) and
refuses one that is not inside its root.
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_NAME_LENGTH = 100
SAFE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")
SAFE_NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit, at most 100 characters"


class UnsafeNameError(ValueError):
    """A name or path that could leave the runs directory or break a script; the message gives the rule."""


def check_name(name: object, what: str = "name") -> str:
    """Return `name` if it matches `SAFE_NAME`, else raise `UnsafeNameError` naming `what` and the rule."""
    if not isinstance(name, str) or SAFE_NAME.fullmatch(name) is None:
        shown = repr(name) if len(repr(name)) <= 120 else repr(name)[:117] + "..."
        raise UnsafeNameError(f"{what} {shown} is not allowed: use {SAFE_NAME_RULE}")
    return name


def path_under(root: str | Path, *parts: str) -> Path:
    """``root / parts...`` resolved, refused unless it stays inside ``root`` (also resolved).

    Raises:
        UnsafeNameError: a part is absolute, holds NUL, or the resolved path leaves `root`.
    """
    base = Path(root).resolve()
    for part in parts:
        if "\x00" in part or Path(part).is_absolute():
            raise UnsafeNameError(f"path part {part!r} is not allowed under {base}: use a relative name ({SAFE_NAME_RULE})")
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise UnsafeNameError(f"{'/'.join(parts)!r} leads outside {base}: use {SAFE_NAME_RULE}")
    return target


__all__ = ["MAX_NAME_LENGTH", "SAFE_NAME", "SAFE_NAME_RULE", "UnsafeNameError", "check_name", "path_under"]
