"""The saturating envelope (issue 27 item 3): robust error = A (FLOPs/1e12)^-alpha + floor."""

from __future__ import annotations

import numpy as np
import pytest

from robustperf.scaling import fit_saturating_envelope, forecast


def planted(floor: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e9, 1e13, 40)
    acc = 1.0 - floor - 0.3 * (x / 1e12) ** -0.3 + rng.normal(0.0, 0.002, x.size)
    return x, acc


def test_planted_floor_is_recovered_and_caps_every_forecast() -> None:
    x, acc = planted(0.1)
    fit = fit_saturating_envelope(x, acc, bootstrap=50)
    assert fit.ok, fit.message
    assert fit.params["floor"] == pytest.approx(0.1, abs=0.03) and fit.params["alpha"] == pytest.approx(0.3, abs=0.05)
    far = forecast(fit, flops=1e20)
    assert far.accuracy.value < 0.9 + 0.03 and "extrapolation" in far.validity  # never past its ceiling
    assert not forecast(fit, target_accuracy=0.95).reachable


def test_a_floor_at_its_bound_is_not_ok() -> None:
    x, acc = planted(0.0)  # no saturation in the data: the floor collapses onto 0
    fit = fit_saturating_envelope(x, np.minimum(acc, 0.999), bootstrap=50)
    assert not fit.ok and "floor" in fit.message


def test_percent_accuracies_are_refused() -> None:
    x, acc = planted(0.1)
    with pytest.raises(ValueError, match="divide them by 100"):
        fit_saturating_envelope(x, 100 * acc)


def test_the_ceiling_is_never_below_a_measured_run() -> None:
    # the best run sits mid-compute and the largest runs fell back (the CIFAR-10 subset study's shape): a
    # free floor put the ceiling at 0.148 under a run that measured 0.186
    flops = np.logspace(10, 12, 8)
    acc = np.array([0.11, 0.13, 0.15, 0.186, 0.17, 0.15, 0.145, 0.142])
    fit = fit_saturating_envelope(flops, acc, bootstrap=50)
    assert fit.to_law().ceiling >= acc.max() - 1e-9
    assert not fit.ok  # the runs show no saturation above their best: the ceiling is not identified
