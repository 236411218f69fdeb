"""An `ok` that cannot be fooled (issue 27): planted laws on narrow grids, parameters at bounds, no bootstrap."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from robustperf.scaling import BootstrapResult, FitResult, FitStatus, fit_approach2, fit_chinchilla
from robustperf.scaling.earned_ok import axis_reasons, bound_reasons, earn_ok
from robustperf.scaling.laws import ChinchillaLaw

TRUTH = ChinchillaLaw(A=400.0, alpha=0.34, B=400.0, beta=0.28, E=1.69)  # Hoffmann et al.'s shape
SMALL_GRID = {"a": (2.0, 6.0), "b": (2.0, 6.0), "e": (-0.5, 0.5), "alpha": (0.1, 0.5), "beta": (0.1, 0.5)}


def planted(n_span: float, d_span: float, noise: float, seed: int, law: ChinchillaLaw = TRUTH):
    rng = np.random.default_rng(seed)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e6 * n_span, 5), np.geomspace(1e8, 1e8 * d_span, 5)))
    return N, D, law(N, D) * np.exp(rng.normal(0.0, noise, N.size))


def fit(fitter, N, D, L, bootstrap: int, grid=SMALL_GRID):  # noqa: N803
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fitter(N, D, L, bootstrap=bootstrap, grid=grid)


@pytest.mark.parametrize("narrow", ["N", "D"])
@pytest.mark.parametrize("span", [1.1, 1.3, 1.5])
@pytest.mark.parametrize("bootstrap", [0, 20])
def test_a_narrow_axis_is_never_ok(narrow: str, span: float, bootstrap: int) -> None:
    N, D, L = planted(span if narrow == "N" else 1e3, span if narrow == "D" else 1e4, 0.01, seed=0)
    res = fit(fit_chinchilla, N, D, L, bootstrap)
    assert not res.ok, res.params
    exponent = "alpha" if narrow == "N" else "beta"
    if res.usable:  # labelled: the exponent of the narrow axis is named
        assert exponent in res.poorly_identified and "needs more than 1.5x" in res.message


@pytest.mark.slow
def test_narrow_grids_never_ok_over_noise_seeds_and_both_fitters() -> None:
    """The issue's outside check: 65 of 144 Approach 2 fits on N spanning under 1.5x came back ok."""
    count = 0
    for narrow, span, noise, seed, bootstrap, fitter in itertools.product(
            "ND", (1.1, 1.3, 1.5), (0.003, 0.01, 0.03), (0, 1), (0, 20), (fit_chinchilla, fit_approach2)):
        N, D, L = planted(span if narrow == "N" else 1e3, span if narrow == "D" else 1e4, noise, seed)
        res = fit(fitter, N, D, L, bootstrap, grid=None)
        assert not res.ok, (narrow, span, noise, seed, bootstrap, fitter.__name__, res.params)
        count += 1
    assert count == 144


@pytest.mark.parametrize("bootstrap", [0, 20])
def test_a_wide_grid_still_earns_ok(bootstrap: int) -> None:
    N, D, L = planted(1e3, 1e4, 0.003, seed=0)
    res = fit(fit_chinchilla, N, D, L, bootstrap)
    assert res.ok, res.message
    assert res.metrics["earned_ok"]["checked_by"] == ("bootstrap" if bootstrap else "local curvature (no bootstrap)")


def test_a_parameter_at_its_bound_is_never_ok() -> None:
    """The issue's fit: E collapsed to its lower bound (2.8e-10, interval [2.8e-10, 3.7e-10], truth 0.48)."""
    N, D, L = planted(1e3, 1e4, 0.003, seed=0)
    params = {"A": 400.0, "B": 400.0, "E": 2.8e-10, "alpha": 0.11, "beta": 0.28}
    boot = BootstrapResult({k: np.full(30, v) for k, v in params.items()}, 30, 0, 0)
    for bootstrap in (None, boot):
        res = earn_ok(FitResult(params=params, status=FitStatus.OK, objective=0.0, n_points=25, law="chinchilla",
                                bootstrap=bootstrap), N, D, L)
        assert res.status == FitStatus.POORLY_IDENTIFIED and "E" in res.poorly_identified
        assert "at its bound 0" in res.message
    # the point estimate clear of the bound but the interval against it: not ok either
    samples = {k: np.full(30, v) for k, v in params.items()}
    samples["E"] = np.linspace(0.0, 1.0, 30)
    res = earn_ok(FitResult(params={**params, "E": 0.5, "alpha": 0.34}, status=FitStatus.OK, objective=0.0,
                            n_points=25, law="chinchilla", bootstrap=BootstrapResult(samples, 30, 0, 0)), N, D, L)
    assert not res.ok and "interval reaches its bound 0" in res.message


def test_bound_and_axis_rules_directly() -> None:
    params = {"A": 400.0, "B": 400.0, "E": 2.8e-10, "alpha": 0.11, "beta": 0.28}
    res = FitResult(params=params, status=FitStatus.OK, objective=0.0, n_points=25, law="chinchilla")
    assert "E" in bound_reasons(res, 2.0, np.log(1e6), np.log(1e8))
    res = FitResult(params={**params, "E": 1.0, "beta": 3.0}, status=FitStatus.OK, objective=0.0, n_points=25)
    reasons = bound_reasons(res, 2.0, np.log(1e6), np.log(1e8))
    assert "beta" in reasons and "E" not in reasons  # beta at the plausible maximum (its term vanishes too)
    assert set(axis_reasons(np.array([1.0, 1.2, 1.4]), np.array([1.0, 10.0, 100.0]))) == {"alpha"}
    assert set(axis_reasons(np.array([1.0, 10.0]), np.array([1.0, 10.0, 100.0]))) == {"alpha"}  # 2 values
    assert axis_reasons(np.array([1.0, 2.0, 4.0]), np.array([1.0, 10.0, 100.0])) == {}
