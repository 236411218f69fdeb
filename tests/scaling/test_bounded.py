"""No code path returns (or draws) an accuracy outside [0, 1] (issue 11: "budget 1e14 -> robust acc 9.811")."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from robustperf.scaling import (
    FitResult,
    LinearMap,
    bounded_accuracy,
    create_law,
    fit_envelope_power_law,
    forecast,
    forecast_accuracy,
    forecast_flops,
)
from robustperf.scaling.forecasting import loss_to_accuracy_ceiling

# Maps that leave [0, 1] at the ends of the loss range: the paper's (1.2575 at L = 0) and a steep one.
MAPS = [create_law("bartoldson2024_loss_to_accuracy"), LinearMap(slope=-3.0, intercept=2.5)]
ND_LAWS = [create_law("bartoldson2024_approach2"), create_law("bartoldson2024_approach3"),
           create_law("chinchilla", A=40.0, B=6.0, E=0.05, alpha=0.45, beta=0.4)]  # floor E far below any map's 1
POWER_LAWS = [create_law("debenedetti2023_powerlaw"), create_law("power_law", C=1e-3, alpha=0.3),
              create_law("power_law", C=5.0, alpha=-0.1)]
BUDGETS = [1e8, 1e12, 1e14, 1e20, 1e30, 1e45]


def _inside(x: float | None) -> bool:
    return x is None or (0.0 <= x <= 1.0)


def _estimate_inside(e) -> bool:
    return e is None or all(_inside(v) for v in (e.value, e.low, e.high))


@pytest.mark.parametrize("budget", BUDGETS)
def test_forecast_accuracy_of_every_law_stays_in_the_unit_interval(budget: float) -> None:
    for law in POWER_LAWS:
        assert _inside(forecast_accuracy(law, budget)), (law, budget)
        assert _estimate_inside(forecast(law, flops=budget).accuracy)
    for law in ND_LAWS:
        for m in MAPS:
            assert _inside(forecast_accuracy(law, budget, k=69.0, loss_to_accuracy=m)), (law, m, budget)
            assert _estimate_inside(forecast(law, flops=budget, k=69.0, loss_to_accuracy=m).accuracy)
            assert _inside(loss_to_accuracy_ceiling(law, m))


def test_power_law_forecast_from_a_fit_is_capped_with_its_validity_and_bootstrap_bounded() -> None:
    # The case: an envelope power law of accuracy fitted on small budgets, asked about 1e14 FLOPs.
    rng = np.random.default_rng(0)
    flops = np.geomspace(1e9, 1e11, 15)
    acc = 0.002 * flops**0.25 * np.exp(rng.normal(0, 0.02, 15))  # 0.36 .. 1.1 - already near 1 at the top
    acc = np.minimum(acc, 0.95)
    fit = fit_envelope_power_law(flops, acc, n_bins=15, bootstrap=100)
    for budget in (1e13, 1e14):
        fc = forecast(fit, flops=budget)
        assert _estimate_inside(fc.accuracy) and fc.accuracy.value == 1.0
        assert "capped at 1" in fc.validity and "fitted on accuracies up to 0.95" in fc.validity
    target = forecast(fit, target_accuracy=0.99)
    assert "beyond the fitted range" in target.validity


def test_targets_above_the_ceiling_are_unreachable_and_named() -> None:
    law = create_law("bartoldson2024_approach2")
    ff = forecast_flops(law, target_accuracy=0.95, fid=0.0)
    assert not ff.reachable and math.isinf(ff.flops) and ff.message.startswith("unreachable: ceiling is accuracy 0.8965")
    # A map that would promise more than 100 % at the floor has ceiling 1, not 1.2.
    steep = LinearMap(slope=-3.0, intercept=2.5)
    assert loss_to_accuracy_ceiling(law, steep) == 1.0
    assert forecast_flops(law, target_accuracy=0.999, loss_to_accuracy=steep).reachable
    with pytest.raises(ValueError, match="slope"):
        forecast_flops(law, target_accuracy=0.5, loss_to_accuracy=LinearMap(slope=0.5, intercept=0.1))


def test_bounded_accuracy_clips_arrays_and_scalars() -> None:
    assert bounded_accuracy(9.811) == 1.0 and bounded_accuracy(-0.2) == 0.0 and bounded_accuracy(0.3) == 0.3
    np.testing.assert_array_equal(bounded_accuracy(np.array([-1.0, 0.5, 4.0])), [0.0, 0.5, 1.0])


def test_report_forecasts_and_figure_never_exceed_one(tmp_path: Path) -> None:
    from robustperf.report import accuracy_vs_flops, analyze
    from robustperf.store import load_index
    from robustperf.sweep import FitSpec, ForecastSpec

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
    import planted_runs

    planted_runs.write_planted_runs(tmp_path, failed=0)
    for surface in ("chinchilla", "none"):  # the L(N, D) path and the envelope power-law path
        analysis = analyze(load_index(tmp_path), fit=FitSpec(surface=surface, bootstrap=20),
                           forecast=ForecastSpec(robust_acc_targets=(0.5, 0.9), flops_budgets=(1e13, 1e14, 1e30)))
        assert analysis.forecasts
        for row in analysis.forecasts:
            acc = row["accuracy"]
            assert acc is None or all(_inside(v) for v in acc), row
            assert row["validity"], row  # every row states up to where it holds
    fit = analysis.envelope["robust_acc"]
    fig = accuracy_vs_flops(analysis.frame, fit, envelope_ids=analysis.envelope_ids["robust_acc"])
    law_lines = [line for line in fig.axes[0].get_lines() if len(line.get_ydata()) > 2]
    assert law_lines and max(float(np.max(line.get_ydata())) for line in law_lines) <= 1.0
    top = float(analysis.frame["flops"].max()) * 4  # the right end of the drawn law
    scale = 1.3 / float(fit.to_law()(top))  # a law that crosses 1 inside the plotted range, 1.3 at its end
    boosted = FitResult({"C": fit.params["C"] * scale, "alpha": fit.params["alpha"]}, "ok", 0.0, 5, law="power_law")
    fig = accuracy_vs_flops(analysis.frame, boosted)
    ys = np.concatenate([line.get_ydata() for line in fig.axes[0].get_lines()])
    assert ys.size and 0.9 < ys.max() <= 1.0
