"""Allocation equals brute force; forecasts invert; costs use the cost module's sourced constants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustperf.cost import conversions
from robustperf.cost.constants import PUE_DEFAULT
from robustperf.scaling import (
    DEFAULT_FLOPS_PER_PARAM_SAMPLE,
    ScalingError,
    compute_optimal,
    create_law,
    estimate_derived,
    fit_approach2,
    flops_per_param_sample,
    forecast,
    forecast_accuracy,
    forecast_cost,
    forecast_flops,
    model_size_tradeoff,
)

K = 7822.0


def _brute_force(law, flops, fid, k=K):
    """Loss on a fine log grid of N along k N D = flops, then a local refinement."""
    log_nd = math.log(flops / k)
    grid = np.linspace(0.0, log_nd, 200001)
    losses = law(np.exp(grid), np.exp(log_nd - grid), fid)
    i = int(np.argmin(losses))
    return math.exp(grid[i]), float(losses[i])


@pytest.mark.parametrize("name", ["bartoldson2024_approach2", "bartoldson2024_approach3"])
@pytest.mark.parametrize(("flops", "fid"), [(1e20, 1.65), (1e23, 0.0), (1e26, 6.79)])
def test_compute_optimal_equals_brute_force(name, flops, fid):
    law = create_law(name)
    alloc = compute_optimal(law, flops, fid=fid, k=K)
    n_bf, loss_bf = _brute_force(law, flops, fid)
    # The grid step in log N is ~1e-4, so N agrees to ~1e-4 relative; the loss is flat at the optimum.
    assert pytest.approx(n_bf, rel=2e-3) == alloc.N
    assert alloc.loss == pytest.approx(loss_bf, rel=1e-9, abs=1e-12) or alloc.loss <= loss_bf
    assert pytest.approx(flops, rel=1e-9) == K * alloc.N * alloc.D


def test_default_k_is_the_cost_module_constant():
    assert DEFAULT_FLOPS_PER_PARAM_SAMPLE == 7822.0
    # 27 forward equivalents (TRADES-10) x 290 FLOPs per parameter per sample (WRNs), REFERENCE.md s.3.
    assert flops_per_param_sample("trades", 10, "wide_resnet") == pytest.approx(27 * 290)
    with pytest.raises(ScalingError, match="wide_resnet"):
        flops_per_param_sample("trades", 10, "mlp")


def test_halving_the_model_costs_about_ten_percent_more_compute():
    law = create_law("bartoldson2024_approach2")
    t = model_size_tradeoff(law, 1e21, 0.5, fid=1.65)
    assert 0.05 < t.overhead < 0.15  # papers/001 Sec. 3.3: "~10 %"
    opt = compute_optimal(law, 1e21, fid=1.65)
    # omega_D keeps the loss: L(0.5 N*, omega_D D*) = L(N*, D*).
    assert float(law(0.5 * opt.N, t.omega_d * opt.D, 1.65)) == pytest.approx(opt.loss, rel=1e-10)
    assert model_size_tradeoff(law, 1e21, 1.0, fid=1.65).overhead == pytest.approx(0.0, abs=1e-12)


def test_forecast_flops_inverts_forecast_accuracy_and_reports_ceiling():
    law = create_law("bartoldson2024_approach2")
    ff = forecast_flops(law, target_accuracy=0.735, fid=1.65)
    assert ff.reachable
    assert forecast_accuracy(law, ff.flops, fid=1.65) == pytest.approx(0.735, abs=1e-9)
    assert ff.flops == pytest.approx(1e21, rel=0.05)  # the anchor: 1e21 FLOPs -> 0.735 at FID 1.65
    beyond = forecast_flops(law, target_accuracy=0.9, fid=0.0)
    assert not beyond.reachable and math.isinf(beyond.flops)
    assert "unreachable: ceiling is accuracy 0.89652" in beyond.message


def test_forecast_with_the_published_power_law():
    law = create_law("debenedetti2023_powerlaw")  # accuracy (%) vs TFLOP
    acc = forecast_accuracy(law, 1e18)
    assert acc == pytest.approx(0.5086 * 1e6**0.01, rel=1e-12)
    assert forecast_flops(law, target_accuracy=acc).flops == pytest.approx(1e18, rel=1e-9)
    a3 = create_law("bartoldson2024_approach3")
    assert not forecast_flops(a3, target_accuracy=0.95, fid=1.65).reachable


def test_forecast_cost_uses_the_cost_conversions():
    c = forecast_cost(1e21, gpu="h100", mfu=0.4)
    hours = 1e21 / (989e12 * 0.4) / 3600
    assert c.gpu_hours == pytest.approx(hours, rel=1e-12)
    assert c.gpu_years == pytest.approx(hours / (24 * 365.25), rel=1e-12)
    kwh = conversions.joules_to_kwh(hours * 3600 * 700.0, pue=PUE_DEFAULT.value)
    assert c.energy_kwh == pytest.approx(kwh, rel=1e-12)
    assert c.co2_kg == pytest.approx(kwh * 0.5663, rel=1e-12)
    assert c.usd_electricity == pytest.approx(kwh * 0.12, rel=1e-12)
    assert c.usd_cloud is None and "Strubell" in c.constants["pue"]["source"]
    assert forecast_cost(1e21).constants["mfu"]["value"] == 0.3 and "REFERENCE.md" in forecast_cost(1e21).constants["mfu"]["source"]
    cloud = forecast_cost(1e21, mfu=0.4, usd_per_gpu_hour=1.46, co2_g_per_kwh=369.5)  # default MFU is 0.3
    assert cloud.usd_cloud == pytest.approx(hours * 1.46, rel=1e-12)
    assert cloud.co2_kg == pytest.approx(kwh * 0.3695, rel=1e-12)
    with pytest.raises(ValueError, match="unknown GPU"):
        forecast_cost(1e21, gpu="tpu9000")


def test_forecast_of_a_fit_has_bootstrap_intervals():
    truth = create_law("bartoldson2024_approach2")
    rng = np.random.default_rng(7)
    n = 120
    N = 10 ** rng.uniform(6.5, 8.7, n)
    D = 10 ** rng.uniform(6.5, 8.7, n)
    fid = rng.choice([1.65, 1.65, 5.0, 10.0], n)
    L = truth(N, D, fid) * np.exp(rng.normal(0, 0.005, n))
    grid = {"a": (0.0, 2.0, 5.0), "b": (0.0, 2.0, 5.0), "e": (-1.0, 0.0), "alpha": (0.1, 0.5), "beta": (0.1, 0.5)}
    fit = fit_approach2(N, D, L, fid, grid=grid, bootstrap=60, seed=1)
    fc = forecast(fit, flops=1e21, fid=1.65)
    for e in (fc.accuracy, fc.N, fc.D, fc.loss):
        assert e.low is not None and e.low <= e.value <= e.high
    assert fc.accuracy.value == pytest.approx(0.735, abs=0.02)  # 0.5 % noise: close to the planted law
    assert fc.cost["energy_kwh"].low == fc.cost["energy_kwh"].high  # fixed budget: no spread in cost
    target = forecast(fit, target_accuracy=0.72, fid=1.65)
    assert target.flops.low is not None and target.flops.low <= target.flops.value <= target.flops.high
    assert target.cost["gpu_hours"].high >= target.cost["gpu_hours"].low > 0
    a_exp = estimate_derived(fit, lambda law: compute_optimal(law, 1e21, fid=1.65).a)
    # Any derived quantity gets an interval; a = beta / (alpha + beta) is weakly identified by 120 runs with
    # 0.5 % noise (the fit's global optimum gives 0.546 vs the planted 0.483), so only a loose range is checked.
    assert a_exp.low <= a_exp.value <= a_exp.high and 0.3 < a_exp.value < 0.7
    d = target.to_dict()
    assert d["reachable"] and d["constants"]["pue"]["value"] == 1.58
    with pytest.raises(ScalingError, match="exactly one"):
        forecast(fit, flops=1e21, target_accuracy=0.7)
