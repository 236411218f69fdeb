"""The catalogue of scaling laws: the `LAWS` registry and its front door `create_law`.

Generic forms (`robustperf.scaling.laws`) are registered with their parameters; published laws
(`robustperf.scaling.published`) are registered under their paper names and take no parameters, or
overrides of single fields. This module imports both and neither imports it, so the law classes and the
published data stay free of registry plumbing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from robustperf.registry import Registry
from robustperf.scaling.bounded_laws import LogitLinearMap, SaturatingPowerLaw
from robustperf.scaling.laws import Approach2Law, Approach3Law, ChinchillaLaw, LinearMap, PowerLaw
from robustperf.scaling.published import PUBLISHED

LawFactory = Callable[..., Any]
LAWS: Registry[LawFactory] = Registry("scaling law")

LAWS.register("power_law", PowerLaw)
LAWS.register("chinchilla", ChinchillaLaw)
LAWS.register("approach2", Approach2Law)
LAWS.register("approach3", Approach3Law)
LAWS.register("linear", LinearMap)
LAWS.register("logit_linear", LogitLinearMap)
LAWS.register("saturating_power_law", SaturatingPowerLaw)


def _published_factory(law: Any) -> LawFactory:
    def build(**overrides: Any) -> Any:
        return replace(law, **overrides) if overrides else law

    build.__doc__ = law.source
    return build


for _name, _law in PUBLISHED.items():
    LAWS.register(_name, _published_factory(_law))


def create_law(name: str, **params: Any) -> Any:
    """Build a law by registry name.

    Generic laws ("power_law", "chinchilla", "approach2", "approach3", "linear") take their parameters;
    published laws ("bartoldson2024_approach2", ...) take none, or overrides of single fields.

    Raises:
        RegistryError: unknown name (the message lists the registered laws).
        TypeError: a parameter the law does not have.
    """
    factory = LAWS.get(name)
    if isinstance(factory, type):
        known = {f.name for f in fields(factory)}
        unknown = set(params) - known
        if unknown:
            raise TypeError(f"law {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(known)}")
    return factory(**params)
