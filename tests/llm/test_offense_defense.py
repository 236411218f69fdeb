"""Offense vs defence compute: success steps, ASR curves, FLOPs to reach an ASR, the log-log fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustperf.llm.offense_defense import (
    OffenseDefensePoint,
    asr_curve,
    attack_flops_to_reach,
    fit_offense_defense,
    plot_asr_vs_steps,
    plot_offense_defense,
    points_from_rows,
    step_record,
    success_steps_gcg,
    success_steps_random_token,
)


def test_gcg_success_step_is_the_first_loss_below_ln2():
    losses = [[1.0, 0.8, 0.6, 0.5], [1.0, 0.9, 0.8, 0.75], [0.5]]
    assert success_steps_gcg(losses, [True, False, True]) == [2, None, 0]


def test_random_token_success_step_is_the_query():
    assert success_steps_random_token([3, 64, 1], [True, False, True]) == [3, None, 1]


def test_asr_curve_counts_prompts_done_by_each_step():
    curve = asr_curve([0, 2, None, 2], 3)
    np.testing.assert_allclose(curve, [0.25, 0.25, 0.75, 0.75])
    assert np.isnan(asr_curve([], 2)).all()


def test_flops_to_reach_interpolates_between_steps():
    curve = np.array([0.0, 0.2, 0.6, 1.0])
    assert attack_flops_to_reach(curve, 10.0, 0.4) == pytest.approx(15.0)  # halfway between steps 1 and 2
    assert attack_flops_to_reach(curve, 10.0, 0.2) == pytest.approx(10.0)
    assert attack_flops_to_reach(curve, 10.0, 0.0) == 0.0
    assert attack_flops_to_reach(np.array([0.0, 0.3]), 10.0, 0.5) is None


def test_step_record_measures_flops_per_step_from_what_ran():
    rec = step_record("gcg", {"n_iterations": 4}, losses=[[1.0, 0.5], [1.0, 0.9, 0.8, 0.7, 0.7]],
                      success=[True, False], n_queries=[2, 5], flops=500.0)
    assert rec["val_success_steps"] == [1, None]
    assert rec["attack_n_steps"] == 4
    assert rec["attack_flops_per_step"] == pytest.approx(500.0 / 5)  # 1 + 4 iterations ran


def test_fit_recovers_planted_slopes():
    rng = np.random.default_rng(0)
    points = []
    for n in (1e5, 1e6, 1e7):
        for d in np.geomspace(1e12, 1e15, 6):
            atk = 10 ** (2.0 + 0.4 * math.log10(d) + 0.3 * math.log10(n) + rng.normal(0, 0.01))
            points.append(OffenseDefensePoint("r", int(n), 0, float(d), float(atk), 0.5))
    points.append(OffenseDefensePoint("r", 10**5, 9, 1e16, None, 0.1))  # never reached: left out
    fit = fit_offense_defense(points)
    assert fit.status == "ok" and fit.n_points == 18
    assert fit.defense_slope == pytest.approx(0.4, abs=0.02)
    lo, hi = fit.intervals["defense_slope"]
    assert lo < 0.4 < hi and hi - lo < 0.1
    assert fit.size_slope == pytest.approx(0.3, abs=0.02)
    assert fit.r2 > 0.99
    assert all(s == pytest.approx(0.4, abs=0.03) for s in fit.per_size_slopes.values())
    assert fit.predict(1e13, 10**6) == pytest.approx(10 ** (2 + 0.4 * 13 + 0.3 * 6), rel=0.1)
    fig = plot_offense_defense(points, fit, target_asr=0.5)
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"


def test_noisy_slopes_are_poorly_identified_and_attacks_are_fitted_apart():
    from robustperf.llm.offense_defense import fit_by_attack

    rng = np.random.default_rng(1)
    points = [OffenseDefensePoint("r", 10**6, 0, float(d), float(10 ** (9 + 0.05 * math.log10(d) + rng.normal(0, 0.5))),
                                  0.5, "gcg") for d in np.geomspace(1e12, 1e13, 6)]
    points += [OffenseDefensePoint("r", 10**6, 0, float(d), float(10 ** (2 + 0.5 * math.log10(d))), 0.5, "random_token")
               for d in np.geomspace(1e12, 1e14, 6)]
    fits = fit_by_attack(points)
    assert set(fits) == {"gcg", "random_token"}
    assert fits["gcg"].status == "poorly_identified"  # slope 0.05 under noise 0.5 over one decade
    assert fits["random_token"].status == "ok" and fits["random_token"].defense_slope == pytest.approx(0.5)
    assert fits["random_token"].attack == "random_token"


def test_fit_with_too_few_points_says_so():
    fit = fit_offense_defense([OffenseDefensePoint("r", 10, 0, 1e12, 1e9, 0.5)])
    assert fit.status == "too_few_points" and math.isnan(fit.defense_slope)


def test_points_from_rows_accumulate_defence_flops():
    base = {"n_params": 100, "attack_n_steps": 2, "attack_flops_per_step": 10.0}
    rows = [{**base, "round": 0, "train_flops": 1000.0, "attack_train_flops": 0.0, "val_success_steps": [1, 1]},
            {**base, "round": 1, "train_flops": 200.0, "attack_train_flops": 50.0, "val_success_steps": [2, None]}]
    pts = points_from_rows("run", rows, target_asr=0.5)
    assert [p.defense_flops for p in pts] == [1000.0, 1250.0]
    # both prompts flip at step 1: ASR 0.5 is interpolated halfway through it; round 1 reaches 0.5 at step 2
    assert pts[0].attack_flops == pytest.approx(5.0) and pts[1].attack_flops == pytest.approx(20.0)
    assert pts[1].asr_final == 0.5
    fig = plot_asr_vs_steps({("gcg", 10**6): [asr_curve([1, 2], 2), asr_curve([0, None], 2)],
                             ("random_token", 10**6): [asr_curve([5, None], 8)]})
    assert len(fig.axes) == 2 and fig.axes[0].get_ylim() == (0, 1)  # one panel per attack
    assert fig.axes[0].get_xlabel() == "GCG iteration" and fig.axes[1].get_xlabel() == "RandomToken query"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [0.25, 0.5, 0.75])  # median of 2 seeds


def test_cli_fits_runs_and_writes_both_figures(tmp_path):
    import json

    from typer.testing import CliRunner

    from robustperf.cli.app import app

    for n, run in ((10**5, "a"), (10**6, "b")):
        d = tmp_path / f"llm-x-advtrain-{run}"
        d.mkdir()
        rows = []
        for rnd in range(3):
            # bigger model and more rounds: prompts flip later (attack cost grows with defence)
            steps = [1 + rnd + (n > 10**5) + i % 3 for i in range(6)]
            rows.append({"round": rnd, "n_params": n, "train_flops": 1e9 * (1 + rnd), "attack_train_flops": 1e7 * rnd,
                         "val_success_steps": steps, "attack_n_steps": 8, "attack_flops_per_step": 1e6,
                         "attack_step": "gcg"})
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig, curves = tmp_path / "od.png", tmp_path / "curves.png"
    res = CliRunner().invoke(app, ["llm", "offense-defense", "--runs-dir", str(tmp_path), "--target-asr", "0.5",
                                   "--figure", str(fig), "--curves", str(curves)])
    assert res.exit_code == 0, res.output
    assert "fit gcg (ok, 6 points)" in res.output
    assert fig.stat().st_size > 0 and curves.stat().st_size > 0
    empty = CliRunner().invoke(app, ["llm", "offense-defense", "--runs-dir", str(tmp_path / "none")])
    assert empty.exit_code != 0 and "no advtrain runs" in empty.output
