"""Zoo trends on planted data: doubling times, eras, the bounded accuracy trend, the efficiency frontier."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustperf.scaling import ScalingError
from robustperf.scaling.trends import (
    add_training_flops,
    detect_eras,
    fit_accuracy_trend,
    fit_efficiency_frontier,
    fit_eras,
    fit_log_trend,
    load_zoo,
    parse_eras,
    select_best,
    write_trends,
    zoo_trends,
)

ROBUSTBENCH = Path("/work/shared/data/robustbench/robustbench_linf_leaderboard.csv")


def _planted(doubling: float, n: int = 120, noise: float = 0.15, seed: int = 0, start: float = 2015.0,
             years: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    year = start + rng.uniform(0, years, n)
    log10 = 7.0 + math.log10(2.0) / doubling * (year - start) + rng.normal(0, noise, n)
    return year, 10**log10


def test_planted_log_linear_trend_recovers_its_doubling_time():
    year, params = _planted(doubling=1.5)
    trend = fit_log_trend(year, params, metric="n_params", bootstrap=500, seed=1)
    d = trend.doubling_years
    assert d.value == pytest.approx(1.5, rel=0.05)
    assert d.low < 1.5 < d.high  # the interval covers the truth
    assert d.high - d.low < 0.3  # and is informative with 120 points
    assert trend.growth_per_year.value == pytest.approx(2 ** (1 / 1.5), rel=0.03)
    assert trend.r2 > 0.9
    assert trend.predict(2015.0 + 1.5) == pytest.approx(2e7, rel=0.1)


def test_a_flat_trend_has_an_infinite_doubling_time_and_an_open_interval():
    rng = np.random.default_rng(0)
    year = rng.uniform(2018, 2024, 80)
    trend = fit_log_trend(year, 10 ** rng.normal(7, 0.3, 80), bootstrap=300)
    assert trend.r2 < 0.2
    assert math.isinf(trend.doubling_years.high)  # a slope interval that reaches <= 0 cannot bound the doubling


def test_too_few_years_is_an_error_that_names_the_need():
    with pytest.raises(ScalingError, match="2 years"):
        fit_log_trend([2020, 2020, 2020], [1e6, 2e6, 3e6])


def test_detect_eras_finds_a_planted_break_and_one_line_fits_one_era():
    y1, v1 = _planted(doubling=3.0, n=80, start=2012, years=6, seed=2)
    rng = np.random.default_rng(3)
    y2 = 2018.5 + rng.uniform(0, 5, 80)
    v2 = 10 ** (8.0 + math.log10(2) / 0.5 * (y2 - 2018.5) + rng.normal(0, 0.15, 80))
    eras = detect_eras(np.r_[y1, y2], np.r_[v1, v2], bootstrap=200)
    assert eras.detected and 2017.5 < eras.breakpoint < 2018.6
    assert eras.trends[0].doubling_years.value == pytest.approx(3.0, rel=0.25)
    assert eras.trends[1].doubling_years.value == pytest.approx(0.5, rel=0.15)
    one = detect_eras(*_planted(doubling=2.0, seed=4), bootstrap=0)
    assert not one.detected and len(one.trends) == 1 and one.bic_split > one.bic_one


def test_user_given_eras_and_their_parsing():
    year, value = _planted(doubling=1.0, n=60, start=2018, years=6)
    eras = fit_eras(year, value, parse_eras("2018-2020.99, 2021-2024"), bootstrap=0)
    assert [round(b[0]) for b in eras.bounds] == [2018, 2021]
    assert all(t.doubling_years.value == pytest.approx(1.0, rel=0.3) for t in eras.trends)
    with pytest.raises(ScalingError, match="FIRST-LAST"):
        parse_eras("2018")
    with pytest.raises(ScalingError, match="era 2030-2031"):
        fit_eras(year, value, [(2030, 2031)])


def test_accuracy_trend_recovers_a_logit_trend_and_stays_bounded():
    rng = np.random.default_rng(0)
    year = np.repeat(np.arange(2016, 2025), 6).astype(float)
    true = 1 / (1 + np.exp(-(-0.5 + 0.3 * (year - 2016))))
    acc = np.clip(true - np.abs(rng.normal(0, 0.05, len(year))), 0.01, 0.99)
    acc[::6] = true[::6]  # the best model of each year sits on the planted curve
    trend = fit_accuracy_trend(year, acc, bootstrap=300)
    assert trend.fit.params["slope"] == pytest.approx(0.3, rel=0.02)
    far = trend.predict(2100)
    assert 0.99 < far.value <= 1.0 and far.high <= 1.0  # never above 1, however far out
    capped = fit_accuracy_trend(year, acc * 0.85, ceiling=0.9, bootstrap=100)
    assert capped.predict(2100).value <= 0.9
    e = trend.predict(2027)
    assert e.low <= e.value <= e.high


def test_accuracy_trend_rejects_percentages_and_a_low_ceiling():
    with pytest.raises(ScalingError, match="divide percentages"):
        fit_accuracy_trend([2019, 2020, 2021], [50.0, 60.0, 65.0])
    with pytest.raises(ScalingError, match="ceiling"):
        fit_accuracy_trend([2019, 2020, 2021], [0.5, 0.6, 0.95], ceiling=0.9)


def test_selections():
    year = np.array([2019, 2019, 2020, 2021, 2021], float)
    acc = np.array([0.5, 0.6, 0.55, 0.7, 0.4])
    assert select_best(year, acc, "best_per_year").tolist() == [False, True, True, True, False]
    assert select_best(year, acc, "record").tolist() == [False, True, False, True, False]
    with pytest.raises(ScalingError, match="unknown selection"):
        select_best(year, acc, "top")


def test_efficiency_frontier_recovers_planted_compute_and_time_coefficients():
    rng = np.random.default_rng(0)
    n = 400
    flops = 10 ** rng.uniform(9, 12, n)
    year = rng.uniform(2018, 2024, n)
    frontier_perf = -1.0 + 0.15 * np.log10(flops) + 0.04 * (year - 2018)
    perf = frontier_perf - rng.exponential(0.08, n)  # everything on or below the frontier
    acc = 1 - 10 ** (-perf)
    f = fit_efficiency_frontier(flops, acc, year, quantile=0.9, bootstrap=50)
    p = f.fit.params
    assert p["beta"] == pytest.approx(0.15, abs=0.01)
    assert p["gamma"] == pytest.approx(0.04, abs=0.006)
    assert f.fit.metrics["coverage"] == pytest.approx(0.9, abs=0.03)
    c = f.compute_for(0.75, 2023.0)
    assert f.accuracy(c.value, 2023.0) == pytest.approx(0.75, abs=1e-9)
    assert c.low < c.value < c.high


def test_training_flops_from_a_recipe_table():
    zoo = load_zoo(pd.DataFrame({"model_id": ["a", "b"], "year": [2020, 2021], "fwd_flops": [1e9, 2e9],
                                 "robust_acc": [0.5, 0.6]}))
    recipes = pd.DataFrame({"model_id": ["a"], "epochs": [100], "n_train": [50_000], "method": ["trades"],
                            "attack_steps": [10]})
    out = add_training_flops(zoo, recipes)
    assert out.loc[0, "train_flops"] == pytest.approx(1e9 * 27 * 100 * 50_000)  # TRADES-10 = 27F
    assert math.isnan(out.loc[1, "train_flops"])
    with pytest.raises(ScalingError, match="recipe table lacks"):
        add_training_flops(zoo, recipes.drop(columns=["method"]))


def test_a_table_with_its_own_recipes_gets_training_flops():
    raw = pd.DataFrame({"year": [2020, 2021, 2022], "fwd_flops": [1e9, 2e9, 3e9], "epochs": [100, 200, None],
                        "n_train": [50_000, 50_000, 50_000], "method": ["pgd_at", "standard", "trades"]})
    zoo = load_zoo(raw)
    assert zoo["train_flops"].tolist()[:2] == pytest.approx([1e9 * 23 * 100 * 5e4, 2e9 * 3 * 200 * 5e4])
    assert math.isnan(zoo["train_flops"].iloc[2])  # no epochs: no training FLOPs, not a guess
    with pytest.raises(ValueError, match="no analytic cost for method 'free'"):
        load_zoo(raw.assign(method="free"))


def test_load_zoo_maps_columns_and_percentages():
    raw = pd.DataFrame({"year": [2020, 2021], "params": [1e6, 2e6], "accuracy": [50.0, 60.0]})
    zoo = load_zoo(raw)
    assert zoo["n_params"].tolist() == [1e6, 2e6]
    assert zoo["robust_acc"].tolist() == [0.5, 0.6]
    with pytest.raises(ScalingError, match="year column"):
        load_zoo(raw.drop(columns=["year"]))
    with pytest.raises(ScalingError, match="data set 'cifar10'"):
        load_zoo(raw, dataset="cifar10")


def test_zoo_trends_on_a_generated_table_and_json(tmp_path):
    year, params = _planted(doubling=2.0, n=60, start=2018, years=6)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"year": year, "n_params": params, "fwd_flops": params * 290,
                          "robust_acc": np.clip(0.4 + 0.04 * (year - 2018) + rng.normal(0, 0.03, 60), 0, 1)})
    res = zoo_trends(load_zoo(frame), label="toy", bootstrap=100, target_years=(2027,))
    assert set(res.trends) == {"n_params", "fwd_flops"}
    assert "recipe" in res.skipped["train_flops"]
    assert res.trends["fwd_flops"].trends[0].doubling_years.value == pytest.approx(2.0, rel=0.15)
    assert res.accuracy is not None and res.frontier is not None
    path = write_trends(res, tmp_path / "t.json")
    import json

    data = json.loads(path.read_text())
    assert data["accuracy"]["forecasts"]["2027"]["value"] == pytest.approx(res.accuracy.predict(2027).value)


@pytest.mark.skipif(not ROBUSTBENCH.exists(), reason="the shipped RobustBench table is not on this machine")
def test_robustbench_table_gives_growing_models_with_intervals():
    zoo = load_zoo(ROBUSTBENCH, dataset="cifar10")
    assert len(zoo) == 99 and zoo["robust_acc"].max() < 1
    res = zoo_trends(zoo, bootstrap=200)
    d = res.trends["n_params"].trends[0].doubling_years
    assert 0 < d.low < d.value < d.high
    acc = res.accuracy.predict(2027)
    assert 0.7 < acc.value < 1.0 and acc.high <= 1.0
