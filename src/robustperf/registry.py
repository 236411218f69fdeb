"""A tiny typed registry: the one front door for every kind of plug-in.

Models, attacks, training methods, laws, energy meters and executors are each
registered by name in a `Registry`. Duplicates are errors, and asking for an
unknown name lists the alternatives (with a close match first), so a typo in a
config fails early with a message that names the fix.

Installed packages add plug-ins through entry points (`PLUGIN_GROUPS`): a package whose
``pyproject.toml`` says ::

    [project.entry-points."robustperf.models"]
    my_net = "my_pkg.nets:build_my_net"

makes ``my_net`` a model in every process that has the package installed (``train``, ``study``,
a cluster array task's ``run-one``, ``evaluate``). Entry points are read when a name is not found
among the built-ins, and when the names are listed; the object an entry point names is registered
under the entry point's name (an entry point that names a module means "import it": the module
registers its items itself). A plug-in that fails to load is logged and skipped, so the built-ins keep
working; asking for it by name raises a one-line `RegistryError` naming the package and the error.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from types import ModuleType
from typing import Generic, TypeVar, overload

T = TypeVar("T")

log = logging.getLogger(__name__)

# the entry-point group each kind of plug-in is read from (by the kind's registry name)
PLUGIN_GROUPS: dict[str, str] = {
    "model": "robustperf.models",
    "training method": "robustperf.methods",
    "dataset": "robustperf.datasets",
    "attack": "robustperf.attacks",
    "scaling law": "robustperf.laws",
    "energy meter": "robustperf.meters",
}


class RegistryError(KeyError):
    """Raised for an unknown or duplicate name; the message lists the alternatives."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Name -> object mapping for one kind of plug-in (e.g. "attack")."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group if group is not None else PLUGIN_GROUPS.get(kind)  # entry-point group, None: no plug-ins
        self._items: dict[str, T] = {}
        self._plugins: dict[str, str] = {}  # entry-point name -> "ok" or the one-line reason it did not load
        self._scanned_path: tuple[str, ...] | None = None  # sys.path of the last entry-point scan
        self._scanning = False

    @overload
    def register(self, name: str, obj: None = None) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; usable as a decorator when `obj` is omitted."""

        def _add(item: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        if obj is None:
            return _add
        return _add(obj)

    def get(self, name: str) -> T:
        if name not in self._items:
            self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            reason = self._plugins.get(name)
            if reason is not None and reason != "ok":
                raise RegistryError(reason) from None
            close = difflib.get_close_matches(name, list(self._items), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob pattern, sorted (e.g. ``ATTACKS.names("apgd*")``)."""
        self.load_plugins()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def plugin_errors(self) -> dict[str, str]:
        """Plug-ins of this kind that failed to load: entry-point name -> one-line reason."""
        self.load_plugins()
        return {n: r for n, r in self._plugins.items() if r != "ok"}

    def load_plugins(self) -> None:
        """Register the entry points of `group` not seen yet (rescanned when `sys.path` changed).

        Never raises for a broken plug-in: it is logged, remembered, and named when asked for.
        """
        if self.group is None or self._scanning or self._scanned_path == tuple(sys.path):
            return
        self._scanning = True  # a plug-in module that looks names up while it loads must not recurse
        try:
            self._scanned_path = tuple(sys.path)
            for ep in metadata.entry_points(group=self.group):
                if ep.name not in self._plugins:
                    self._plugins[ep.name] = self._load_one(ep)
        finally:
            self._scanning = False

    def _load_one(self, ep: metadata.EntryPoint) -> str:
        dist = ep.dist.name if ep.dist is not None else "an unknown package"
        where = f"{self.kind} plug-in {ep.name!r} ({ep.value}, entry point group {self.group} of {dist})"
        if ep.name in self._items:
            reason = f"{where} has the name of a built-in {self.kind}: rename the entry point"
            log.warning("%s", reason)
            return reason
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any failure of foreign code: log it, keep the built-ins
            detail = " ".join(str(exc).split()) or type(exc).__name__
            reason = f"{where} failed to load: {type(exc).__name__}: {detail}; fix or uninstall {dist}"
            log.warning("%s", reason)
            return reason
        if isinstance(obj, ModuleType):
            if ep.name in self._items:
                return "ok"
            reason = f"{where} names a module that did not register {ep.name!r}: point the entry point at the object"
            log.warning("%s", reason)
            return reason
        if ep.name not in self._items:
            self._items[ep.name] = obj
        return "ok"

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in self._items:
            self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._items)
