"""Conversions reproduce hand-computed values; constants carry sources; overrides are marked."""

from __future__ import annotations

import pytest

from robustperf.config import CostConfig
from robustperf.cost import conversions as cv
from robustperf.cost.accounting import run_cost


def test_kwh_co2_usd_by_hand() -> None:
    # 3.6e6 J = 1 kWh at the GPU; x 1.58 PUE = 1.58 kWh at the wall.
    kwh = cv.joules_to_kwh(3.6e6)
    assert kwh == pytest.approx(1.58)
    # 1.58 kWh x 566.3 g/kWh = 894.754 g
    assert cv.kwh_to_co2_kg(kwh) == pytest.approx(0.894754)
    assert cv.kwh_to_co2_kg(2.0, grid="us_average_2023") == pytest.approx(0.739)
    assert cv.kwh_to_co2_kg(2.0, g_per_kwh=100.0) == pytest.approx(0.2)
    assert cv.electricity_usd(kwh) == pytest.approx(0.1896)
    assert cv.joules_to_kwh(7.2e6, pue=1.0) == pytest.approx(2.0)


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="PUE"):
        cv.joules_to_kwh(1.0, pue=0.9)
    with pytest.raises(ValueError, match="grid preset"):
        cv.kwh_to_co2_kg(1.0, grid="mars")
    with pytest.raises(ValueError, match="mfu"):
        cv.gpu_hours_from_flops(1e18, mfu=0.0)
    with pytest.raises(ValueError, match="unknown GPU"):
        cv.gpu_hours_from_flops(1e18, gpu="tpu-v9")


def test_gpu_hours_from_throughput_and_from_peak() -> None:
    # 50k images at 500 img/s = 100 s on 2 GPUs = 200 GPU-seconds.
    assert cv.gpu_hours_from_throughput(50_000, 500.0, n_gpus=2) == pytest.approx(200 / 3600)
    # 989e12 FLOP/s x 0.5 = 494.5e12; 494.5e12 * 3600 FLOPs = 1 GPU-hour on an H100.
    assert cv.gpu_hours_from_flops(494.5e12 * 3600, gpu="h100", mfu=0.5) == pytest.approx(1.0)
    assert cv.gpu_hours_from_flops(1e15 * 3600, peak_flops=1e15, mfu=1.0) == pytest.approx(1.0)
    assert cv.gpu_hours_from_flops(312e12 * 3600, gpu="NVIDIA A100-SXM4-80GB", mfu=1.0) == pytest.approx(1.0)
    assert cv.joules_from_gpu_hours(2.0, watts=700.0) == pytest.approx(5.04e6)
    assert cv.gpu_hours_usd(10.0, usd_per_gpu_hour=1.46) == pytest.approx(14.6)


def test_constants_default_sources_and_overrides() -> None:
    default = cv.resolve_constants(CostConfig()).to_dict()
    assert default["co2_g_per_kwh"]["value"] == 566.3
    assert "ML CO2 Impact" in default["co2_g_per_kwh"]["source"]
    assert "Strubell" in default["pue"]["source"]
    assert "usd_per_gpu_hour" not in default
    custom = cv.resolve_constants(CostConfig(pue=1.1, co2_g_per_kwh=50.0, usd_per_gpu_hour=2.0)).to_dict()
    assert custom["pue"] == {"value": 1.1, "unit": "ratio", "source": "user override (run config)", "year": None}
    assert custom["co2_g_per_kwh"]["value"] == 50.0 and "override" in custom["co2_g_per_kwh"]["source"]
    assert custom["usd_per_gpu_hour"]["value"] == 2.0


def test_run_cost_block_by_hand() -> None:
    cost = run_cost(
        CostConfig(usd_per_gpu_hour=1.0),
        seconds=1800.0,
        samples_seen=1000,
        flops_per_sample=2.0e9,
        joules=3.6e6,
        energy_source="fake",
        n_gpus=2,
        peak_memory_bytes=123,
        eval_flops=5.0,
    )
    assert cost["train_flops"] == pytest.approx(2.0e12)
    assert cost["total_flops"] == pytest.approx(2.0e12 + 5.0)
    assert cost["gpu_hours"] == pytest.approx(1.0)
    assert cost["energy_kwh"] == pytest.approx(1.58)
    assert cost["co2_kg"] == pytest.approx(0.894754)
    assert cost["usd"] == pytest.approx(0.1896) and cost["usd_gpu_hours"] == pytest.approx(1.0)
    assert cost["energy_source"] == "fake" and cost["peak_memory_bytes"] == 123
    assert set(cost["constants"]) == {"pue", "co2_g_per_kwh", "usd_per_kwh", "usd_per_gpu_hour"}


def test_run_cost_time_only() -> None:
    cost = run_cost(
        CostConfig(), seconds=60.0, samples_seen=10, flops_per_sample=1.0, joules=None, energy_source="none"
    )
    assert cost["energy_joules"] is None and cost["energy_kwh"] is None and cost["co2_kg"] is None
    assert cost["usd"] is None
    assert cost["gpu_hours"] == pytest.approx(60 / 3600)


def test_run_cost_uncounted_flops_are_null_not_nan() -> None:
    import json

    cost = run_cost(
        CostConfig(),
        seconds=1.0,
        samples_seen=10,
        flops_per_sample=float("nan"),
        joules=1.0,
        energy_source="fake",
        eval_flops=float("nan"),
    )
    assert cost["train_flops"] is None and cost["flops_per_sample"] is None and cost["total_flops"] is None
    json.dumps(cost, allow_nan=False)  # strict JSON
