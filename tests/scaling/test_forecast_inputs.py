"""Bad forecast inputs exit non-zero with a one-line error naming the fix (issue 27)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.scaling import ScalingError, create_law, fit_table, forecast

runner = CliRunner()


@pytest.mark.parametrize("flops", ["-1", "0", "nan", "inf"])
def test_a_budget_that_is_not_positive_and_finite_is_refused(flops: str) -> None:
    res = runner.invoke(app, ["forecast", "--law", "bartoldson2024_approach2", f"--flops={flops}"])
    assert res.exit_code != 0
    assert "positive, finite number of FLOPs" in res.output
    assert "ok" not in res.output.split()  # no forecast table was printed


@pytest.mark.parametrize("target", ["0", "1", "-0.2", "90"])
def test_a_target_outside_0_1_is_refused(target: str) -> None:
    res = runner.invoke(app, ["forecast", "--law", "bartoldson2024_approach2", f"--target-accuracy={target}"])
    assert res.exit_code != 0 and "fraction in (0, 1)" in res.output
    if target == "90":
        assert "divide it by 100" in res.output


def _table(tmp_path, acc_scale: float, x_name: str, x_scale: float = 1.0):
    rng = np.random.default_rng(0)
    flops = 10 ** rng.uniform(12, 16, 40)
    frame = pd.DataFrame({x_name: flops * x_scale, "robust_acc": acc_scale * 0.3 * (flops / 1e12) ** 0.05})
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    return path


def test_accuracies_in_percent_are_refused_by_fit_and_forecast(tmp_path) -> None:
    path = _table(tmp_path, 100.0, "train_flops")
    res = runner.invoke(app, ["fit", str(path), "--law", "power_law", "--x", "train_flops", "--y", "robust_acc"])
    assert res.exit_code != 0 and "divide it by 100" in res.output.lower()
    # a fit that slipped through (e.g. an old JSON) is refused at forecast time
    fit = fit_table(_table(tmp_path, 1.0, "train_flops"), "power_law", x="train_flops", y="robust_acc")
    from dataclasses import replace

    percent = replace(fit, metrics={**fit.metrics, "y_range": [30.0, 45.0]})
    with pytest.raises(ScalingError, match="percent"):
        forecast(percent, flops=1e15)


def test_the_x_unit_is_recorded_and_converted_or_refused(tmp_path) -> None:
    in_flops = fit_table(_table(tmp_path, 1.0, "train_flops"), "power_law", x="train_flops", y="robust_acc")
    in_tflop = fit_table(_table(tmp_path, 1.0, "train_tflops", 1e-12), "power_law", x="train_tflops", y="robust_acc")
    assert in_flops.law_kwargs["x_unit"] == "FLOP" and in_tflop.law_kwargs["x_unit"] == "TFLOP"
    a = forecast(in_flops, flops=1e15).accuracy.value
    b = forecast(in_tflop, flops=1e15).accuracy.value  # --flops is FLOPs, whatever the column's unit
    assert a == pytest.approx(b, rel=1e-6)
    unknown = fit_table(_table(tmp_path, 1.0, "compute"), "power_law", x="compute", y="robust_acc")
    with pytest.raises(ScalingError, match="names no FLOP unit"):
        forecast(unknown, flops=1e15)


def test_library_forecast_refuses_the_same_inputs() -> None:
    law = create_law("bartoldson2024_approach2")
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ScalingError, match="positive, finite"):
            forecast(law, flops=bad)
