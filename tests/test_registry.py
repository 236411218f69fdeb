"""Registry: register/get/names, duplicates rejected, unknown names list the alternatives."""

from __future__ import annotations

import pytest

from robustperf.registry import Registry, RegistryError


def make() -> Registry[int]:
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)

    @reg.register("beta_two")
    def _beta() -> int:  # decorator form returns the object unchanged
        return 2

    assert _beta() == 2
    return reg


def test_get_names_contains() -> None:
    reg = make()
    assert reg.get("alpha") == 1
    assert reg.names() == ["alpha", "beta_two"] and list(reg) == ["alpha", "beta_two"]
    assert reg.names("b*") == ["beta_two"]
    assert "alpha" in reg and "gamma" not in reg and len(reg) == 2


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(RegistryError) as err:
        make().get("alpah")
    message = str(err.value)
    assert "unknown widget 'alpah'" in message
    assert "Did you mean 'alpha'?" in message
    assert "alpha, beta_two" in message


def test_duplicate_is_an_error() -> None:
    reg = make()
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha", 3)
    assert reg.get("alpha") == 1


def test_training_methods_registry_is_complete() -> None:
    from robustperf.training import METHODS

    assert METHODS.names() == ["ensemble", "fast_at", "fgsm_noproj", "free_at", "mart", "pgd_at", "standard", "trades"]
    with pytest.raises(RegistryError, match="Available: ensemble, fast_at, fgsm_noproj, free_at, mart, pgd_at, standard, trades"):
        METHODS.get("awp")
