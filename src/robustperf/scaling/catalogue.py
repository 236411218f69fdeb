"""The registration lines of the built-in scaling laws, in the one registry `LAWS` (`law_registry.py`).

Generic forms (`robustperf.scaling.laws`, `robustperf.scaling.bounded_laws`) are registered with their
parameters; published laws (`robustperf.scaling.published`) are registered under their paper names and
take no parameters, or overrides of single fields. A new law is one file with its class plus one
``LAWS.register`` line here (a plug-in package registers through the ``robustperf.laws`` entry points
instead). Nothing the laws import imports this module, so the law classes and the published data stay
free of registry plumbing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from robustperf.scaling.bounded_laws import LogitLinearMap, SaturatingPowerLaw
from robustperf.scaling.errors import ScalingError
from robustperf.scaling.law_registry import LAWS, LawFactory, create_law, law_class
from robustperf.scaling.laws import (
    Approach1Law,
    Approach2Law,
    Approach3Law,
    ChinchillaLaw,
    LinearMap,
    PowerLaw,
    SurfaceLaw,
)
from robustperf.scaling.published import PUBLISHED

__all__ = ["LAWS", "LawFactory", "create_law", "law_class", "surface_law"]

LAWS.register("power_law", PowerLaw)
LAWS.register("chinchilla", ChinchillaLaw)
LAWS.register("approach1", Approach1Law)
LAWS.register("approach2", Approach2Law)
LAWS.register("approach3", Approach3Law)
LAWS.register("linear", LinearMap)
LAWS.register("logit_linear", LogitLinearMap)
LAWS.register("saturating_power_law", SaturatingPowerLaw)


def _published_factory(law: Any) -> LawFactory:
    def build(**overrides: Any) -> Any:
        return replace(law, **overrides) if overrides else law

    build.__doc__ = law.source
    build.law_type = type(law)  # type: ignore[attr-defined]  # what `law_class` reports for the name
    return build


for _name, _law in PUBLISHED.items():
    LAWS.register(_name, _published_factory(_law))


def surface_law(name: str) -> type[SurfaceLaw]:
    """The `SurfaceLaw` class a registered name builds (what a study's ``fit.surface`` names).

    Raises:
        RegistryError: unknown name.
        ScalingError: the name is a law, but not an L(N, D) law.
    """
    cls = law_class(name)
    if not issubclass(cls, SurfaceLaw):
        raise ScalingError(f"{name!r} is not an L(N, D) law (a SurfaceLaw); it builds a {cls.__name__}")
    return cls
