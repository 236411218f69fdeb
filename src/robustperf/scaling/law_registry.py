"""The one registry of scaling laws, `LAWS`, and its front door `create_law`.

It imports no law: each law is registered by `robustperf.scaling.catalogue` (the built-ins and the
published laws) or by a plug-in (entry-point group ``robustperf.laws``, or ``LAWS.register`` in the
plug-in's module). `robustperf.scaling` imports the catalogue before anything else can ask, so a fit
result (`result.py`) builds its law here without importing the fitters' own law classes, and a law class
may import its fitter without a circle of files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

from robustperf.registry import Registry

LawFactory = Callable[..., Any]
LAWS: Registry[LawFactory] = Registry("scaling law")


def create_law(name: str, **params: Any) -> Any:
    """Build a law by registry name.

    Generic laws ("power_law", "chinchilla", "approach2", "approach3", "linear") take their parameters;
    published laws ("bartoldson2024_approach2", ...) take none, or overrides of single fields.

    Raises:
        RegistryError: unknown name (the message lists the registered laws).
        TypeError: a parameter the law does not have.
    """
    factory = LAWS.get(name)
    if isinstance(factory, type) and is_dataclass(factory):
        known = {f.name for f in fields(factory)}
        unknown = set(params) - known
        if unknown:
            raise TypeError(f"law {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(known)}")
    return factory(**params)


def law_class(name: str) -> type:
    """The class a registered law name builds (a published law's is its generic form's class).

    Raises:
        RegistryError: unknown name.
    """
    factory = LAWS.get(name)
    if isinstance(factory, type):
        return factory
    built = getattr(factory, "law_type", None)  # a published law's factory names the class it returns
    return built if isinstance(built, type) else type(factory())
