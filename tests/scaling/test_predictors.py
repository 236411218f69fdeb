"""Predictors, Pareto fronts, extrapolation validation and table loading on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustperf.scaling import (
    ScalingError,
    create_law,
    extrapolation_validation,
    fit_approach2,
    fit_frontier_quantile,
    fit_robustness_predictor,
    load_table,
    pareto_front,
    pareto_mask,
)


def _recipes(n=300, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "model_parameters": rng.choice([36e6, 46e6, 184e6, 267e6], n),
        "synthetic_data": rng.choice([True, False], n),
        "activation": rng.choice(["relu", "gelu"], n),
        "at_steps": rng.choice([1, 2, 5, 7, 10], n),
        "noise_feature": rng.normal(size=n),
    })
    # Synthetic data matters most, then steps, then size; the noise column not at all.
    frame["aa"] = (40 + 10 * frame.synthetic_data + 1.0 * frame.at_steps + 2e-8 * frame.model_parameters
                   + rng.normal(0, 0.5, n))
    return frame


def test_gradient_boosting_predictor_ranks_planted_features():
    frame = _recipes()
    res = fit_robustness_predictor(frame, ["model_parameters", "synthetic_data", "activation", "at_steps",
                                           "noise_feature"], "aa")
    assert res.n_train == 210 and res.n_test == 90  # the 70:30 split of papers/002
    assert res.r2_test > 0.9
    ranking = list(res.importances)
    assert ranking[:2] == ["synthetic_data", "at_steps"]
    assert res.importances["activation"] < 0.02 and sum(res.importances.values()) == pytest.approx(1.0)
    pred = res.predict(frame.head(5))
    assert pred.shape == (5,) and np.all(np.abs(pred - frame.aa.head(5)) < 3)
    with pytest.raises(ScalingError, match="not in the table"):
        fit_robustness_predictor(frame, ["nope"], "aa")


def test_frontier_quantile_lies_above_most_runs():
    rng = np.random.default_rng(1)
    x = 10 ** rng.uniform(15, 20, 400)
    y = 20 + 5 * np.log10(x / 1e15) - rng.exponential(3.0, 400)
    fit = fit_frontier_quantile(x, y, quantile=0.9)
    assert fit.metrics["coverage"] == pytest.approx(0.9, abs=0.03)
    assert fit.params["slope"] == pytest.approx(5.0, abs=0.5)


def test_pareto_front_keeps_only_non_dominated_runs():
    frame = pd.DataFrame({
        "clean": [0.9, 0.85, 0.8, 0.95, 0.7],
        "robust": [0.5, 0.6, 0.55, 0.4, 0.3],
        "flops": [10.0, 20.0, 30.0, 40.0, 5.0],
    })
    front = pareto_front(frame, maximize=["clean", "robust"], minimize=["flops"])
    # Run 2 is dominated by run 1 (better in both accuracies, cheaper); the others trade off.
    assert front.index.tolist() == [4, 0, 1, 3]
    assert pareto_mask(np.array([[1.0, 1.0], [1.0, 1.0], [np.nan, 2.0]]), [1, 1]).tolist() == [True, True, False]
    with pytest.raises(ScalingError):
        pareto_front(frame)


def test_extrapolation_validation_holds_out_the_largest_compute():
    truth = create_law("bartoldson2024_approach2")
    rng = np.random.default_rng(2)
    n = 80
    N = 10 ** rng.uniform(6.5, 8.5, n)
    D = 10 ** rng.uniform(6.5, 8.5, n)
    L = truth(N, D, 1.65) * np.exp(rng.normal(0, 0.002, n))
    C = 7822 * N * D
    grid = {"a": (0.0, 2.0), "b": (0.0, 2.0), "e": (-1.0, 0.0), "alpha": (0.1, 0.5), "beta": (0.1, 0.5)}
    res = extrapolation_validation(
        C, L, lambda m: fit_approach2(N[m], D[m], L[m], 1.65, grid=grid),
        lambda f, m: f.to_law()(N[m], D[m], 1.65), held_out_fraction=0.2)
    assert res.n_held_out == 16 and res.n_train == 64
    assert res.threshold_flops == pytest.approx(np.sort(C)[-16])
    assert res.rmse_log < 0.01  # the planted law extrapolates; 0.2 % noise
    assert res.to_dict()["fit"]["status"] == "ok"


def test_load_table_reads_csv_parquet_frames_and_names_missing(tmp_path):
    frame = _recipes(20)
    csv = tmp_path / "runs.csv"
    frame.to_csv(csv, index=False)
    assert len(load_table(csv)) == 20
    assert load_table(frame) is frame
    with pytest.raises(FileNotFoundError, match="CSV"):
        load_table(tmp_path / "missing.csv")
    bad = tmp_path / "x.xlsx"
    bad.write_text("")
    with pytest.raises(ScalingError, match="unsupported"):
        load_table(bad)
