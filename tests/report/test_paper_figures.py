"""The papers' and the zoo's figures on small generated data: what is drawn is the data, and nothing is never drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from robustperf.report import papers, zoo
from robustperf.report.kinds import PLOTS, build_plot
from robustperf.report.papers import NoFigure
from robustperf.scaling import compute_optimal, create_law, fit_robustness_predictor, model_size_tradeoff
from robustperf.scaling.trends import detect_eras, fit_accuracy_trend, fit_efficiency_frontier, load_zoo

A2 = create_law("bartoldson2024_approach2")


def _zoo(n=60, seed=0):
    rng = np.random.default_rng(seed)
    year = rng.integers(2018, 2025, n).astype(float)
    params = 10 ** (7 + 0.15 * (year - 2018) + rng.normal(0, 0.2, n))
    acc = np.clip(0.4 + 0.04 * (year - 2018) + rng.normal(0, 0.04, n), 0.01, 0.99)
    return load_zoo(pd.DataFrame({"model_id": [f"m{i}" for i in range(n)], "dataset": "cifar10", "year": year,
                                  "n_params": params, "fwd_flops": params * 290, "robust_acc": acc}))


def _rounds(seeds=3, rounds=4):
    rows = []
    for model, n in (("tiny", 1e6), ("small", 1e7)):
        for s in range(seeds):
            for r in range(rounds + 1):
                rows.append({"run_id": f"{model}{s}", "model": model, "n_params": n, "task": "spam", "attack": "gcg",
                             "eval_attack": "gcg", "seed": s, "round": r,
                             "asr": max(0.0, 0.9 - r * (0.1 if n < 5e6 else 0.2) + 0.05 * s)})
    return pd.DataFrame(rows)


def _lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_label() and not ln.get_label().startswith("_")]


def test_accuracy_vs_flops_by_quality_draws_one_law_per_fid_and_the_human_line():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"flops": 10 ** rng.uniform(17, 20, 12), "robust_acc": rng.uniform(0.5, 0.7, 12),
                          "fid": [np.nan, 1.65, 5.0] * 4})
    fig = papers.accuracy_vs_flops_by_quality(frame, A2, human_level=0.9046)
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in _lines(ax)]
    # each law solid over the runs' compute, dashed beyond the largest run (issue 27: extrapolation, labelled)
    assert labels == ["law, real data", "law, real data: extrapolation", "law, FID 1.65", "law, FID 1.65: extrapolation",
                      "law, FID 5", "law, FID 5: extrapolation", "human level (90.5%)"]
    assert _lines(ax)[3].get_linestyle() == "--" and _lines(ax)[2].get_xdata()[-1] <= frame["flops"].max()
    law_line = _lines(ax)[3]
    x, y = law_line.get_data()
    from robustperf.scaling import forecast_accuracy

    assert y[-1] == pytest.approx(forecast_accuracy(A2, float(x[-1]), fid=1.65))
    assert y[-1] > y[0]  # more compute, more robustness
    assert _lines(ax)[-1].get_ydata()[0] == pytest.approx(0.9046)
    with pytest.raises(NoFigure, match="no runs"):
        papers.accuracy_vs_flops_by_quality(frame.assign(flops=0.0))


def test_overhead_vs_model_size_plots_eq6_with_zero_at_the_optimum():
    fig = papers.overhead_vs_model_size(A2, 1e20, fid=1.65, omega=[0.25, 0.5, 1.0, 2.0, 4.0],
                                        models={"prior SOTA": 2.67e8})
    ax = fig.axes[0]
    x, y = _lines(ax)[0].get_data()
    n_opt = compute_optimal(A2, 1e20, fid=1.65).N
    assert x[2] == pytest.approx(n_opt)
    assert y[2] == pytest.approx(0.0, abs=1e-9)
    assert y[1] == pytest.approx(100 * model_size_tradeoff(A2, 1e20, 0.5, fid=1.65).overhead)
    assert 10 < y[1] < 20 and 5 < y[3] < 15  # halving the model costs ~10-15 % more compute (papers/001)
    assert any("prior SOTA" in t.get_text() for t in ax.get_legend().get_texts())


def test_predictor_figure_shows_the_held_out_split_and_every_feature():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"params": rng.choice([36e6, 267e6], 80), "synthetic": rng.choice([True, False], 80),
                          "steps": rng.choice([1, 5, 10], 80)})
    frame["aa"] = 40 + 10 * frame.synthetic + frame.steps + rng.normal(0, 0.5, 80)
    res = fit_robustness_predictor(frame, ["params", "synthetic", "steps"], "aa")
    fig = papers.predictor_figure(res, target="AutoAttack accuracy")
    parity, bars = fig.axes[:2]
    offsets = parity.collections[0].get_offsets()
    assert len(offsets) == res.n_test == len(res.y_test)
    assert np.allclose(offsets[:, 1], res.y_test_pred)
    assert [t.get_text() for t in bars.get_yticklabels()] == list(res.importances)[::-1]
    empty = type(res)(res.model, res.features, res.encoded_columns, 0.0, 0.0, {}, 0, 0)
    with pytest.raises(NoFigure, match="held-out"):
        papers.predictor_figure(empty)


def test_asr_vs_round_bands_span_min_to_max_over_seeds():
    long = _rounds()
    table = papers.llm_round_table(long)
    row = table[(table.model == "tiny") & (table["round"] == 1)].iloc[0]
    assert (row.asr_min, row.asr_median, row.asr_max) == pytest.approx((0.8, 0.85, 0.9))
    fig = papers.asr_vs_round(long)
    ax = fig.axes[0]
    assert [ln.get_label() for ln in _lines(ax)] == ["tiny (1M)", "small (10M)"]  # ordered by size
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(table[table.model == "tiny"].asr_min.min())
    # the reduced CSV that llm/study.py writes gives the same figure data
    fig2 = papers.asr_vs_round(table)
    assert np.allclose(_lines(fig2.axes[0])[0].get_ydata(), _lines(ax)[0].get_ydata())
    with pytest.raises(NoFigure):
        papers.asr_vs_round(long.assign(asr=np.nan))


def test_the_llm_studys_own_csvs_draw(tmp_path):
    from robustperf.llm.study import asr_vs_round as reduce_rounds
    from robustperf.llm.study import write_csv

    rows = _rounds().assign(pool_size=0, clean_acc=0.9, round_flops=1.0, cum_flops=1.0, seconds=1.0)
    long_path, table_path = tmp_path / "s_rounds.csv", tmp_path / "s_asr_vs_round.csv"
    write_csv(long_path, rows.to_dict("records"))
    write_csv(table_path, reduce_rounds(rows.to_dict("records")))  # what `robustperf llm study` writes
    a = papers.asr_vs_round(pd.read_csv(long_path))
    b = papers.asr_vs_round(pd.read_csv(table_path))
    for la, lb in zip(_lines(a.axes[0]), _lines(b.axes[0]), strict=True):
        assert la.get_label() == lb.get_label()
        assert np.allclose(la.get_ydata(), lb.get_ydata())


def test_asr_vs_model_size_draws_round_zero_and_the_last_round():
    fig = papers.asr_vs_model_size(_rounds())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["fine-tuned only (round 0)", "last round"]
    last = ax.containers[1].lines[0].get_ydata()
    assert last.tolist() == pytest.approx([0.55, 0.15])  # medians at round 4: tiny, small


def test_zoo_figures_draw_the_fits():
    table = _zoo()
    eras = detect_eras(table.year, table.n_params, metric="n_params", bootstrap=50)
    fig = zoo.metric_vs_year(table, eras)
    assert "doubling" in _lines(fig.axes[0])[0].get_label()
    trend = fit_accuracy_trend(table.year, table.robust_acc, bootstrap=50)
    fig = zoo.accuracy_vs_year(table, trend, targets=[2027])
    x, y = _lines(fig.axes[0])[0].get_data()
    assert x[-1] == pytest.approx(2027) and y[-1] == pytest.approx(trend.predict(2027).value)
    frontier = fit_efficiency_frontier(table.fwd_flops, table.robust_acc, table.year, bootstrap=0,
                                       compute_name="fwd_flops")
    fig = zoo.efficiency_frontier(table, frontier, years=[2018, 2024])
    assert len(_lines(fig.axes[0])) == 2
    with pytest.raises(NoFigure):
        zoo.metric_vs_year(table.assign(n_params=np.nan), eras)


def test_study_vs_zoo_needs_runs_and_the_report_hook_finds_zoo_overlays(tmp_path):
    table = _zoo()
    runs = pd.DataFrame({"status": ["finished", "failed"], "n_params": [1e6, 2e6], "robust_acc": [0.3, np.nan],
                         "dataset": ["cifar10", "cifar10"]})
    fig = zoo.study_vs_zoo(runs, table)
    assert len(fig.axes[0].collections[1].get_offsets()) == 1  # only the finished run
    with pytest.raises(NoFigure, match="finished runs"):
        zoo.study_vs_zoo(runs.assign(status="failed"), table)
    path = tmp_path / "zoo.csv"
    table.to_csv(path, index=False)
    other = tmp_path / "other.csv"
    pd.DataFrame({"a": [1]}).to_csv(other, index=False)
    figs = zoo.zoo_figures(runs, [path, other])
    assert list(figs) == ["study_vs_zoo_zoo"]


def test_every_plot_kind_is_reachable_and_options_are_checked(tmp_path):
    path = tmp_path / "zoo.csv"
    _zoo().to_csv(path, index=False)
    assert isinstance(build_plot("frontier", path, bootstrap=0), Figure)
    assert isinstance(build_plot("params-vs-year", path, eras="2018-2020,2021-2024", bootstrap=0), Figure)
    rounds = tmp_path / "q_rounds.csv"
    _rounds().to_csv(rounds, index=False)
    assert isinstance(build_plot("asr-vs-round", rounds), Figure)
    assert isinstance(build_plot("overhead", "bartoldson2024_approach2", flops=1e20), Figure)
    with pytest.raises(ValueError, match="--law does not apply to plot 'frontier'"):
        build_plot("frontier", path, law="x")
    with pytest.raises(ValueError, match="needs --flops"):
        build_plot("overhead", "bartoldson2024_approach2")
    with pytest.raises(KeyError, match="Did you mean 'frontier'"):
        build_plot("frontiers", path)
    from robustperf.cli.plot import KINDS

    assert set(KINDS) == set(PLOTS.names())


def test_the_report_adds_the_papers_figures_and_the_study_against_a_zoo(tmp_path):
    import sys
    from pathlib import Path

    from robustperf.report import build_report
    from robustperf.sweep import study_from_dict

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import planted_runs

    runs = tmp_path / "runs"
    planted_runs.write_planted_runs(runs)
    zoo_csv = tmp_path / "leaderboard.csv"
    z = _zoo()
    pd.DataFrame({"dataset": "synthetic", "model_id": z.model_id, "year_in_id": z.year,  # RobustBench's columns
                  "n_params_used_in_forward": z.n_params / 1e4, "clean_acc": 100 * (z.robust_acc + 0.2),
                  "autoattack_acc": 100 * z.robust_acc}).to_csv(zoo_csv, index=False)
    study = study_from_dict({"name": "planted", "base": {"name": "planted", "optim": {"epochs": 2}},
                             "grid": {"model.kwargs.width": [4, 8, 16, 32], "data.n_train": [300, 600, 1200, 2400]},
                             "fit": {"bootstrap": 0}})
    page = build_report(runs, tmp_path / "report", study=study, overlays=[zoo_csv])
    figures = page.parent / "figures"
    for name in ("accuracy_vs_flops_human", "overhead_vs_model_size", "study_vs_zoo_leaderboard"):
        assert (figures / f"{name}.png").stat().st_size > 5000, name
        assert f"id='fig-{name}'" in page.read_text()
    assert not (figures / "predictor.png").exists()  # 16 runs: too few, and the page says why
    assert "figure predictor not drawn: the predictor needs &gt;= 20 finished runs" in page.read_text()


def test_metric_vs_year_draws_each_era_and_the_break():
    rng = np.random.default_rng(0)
    year = np.r_[rng.uniform(2012, 2018, 60), rng.uniform(2018.5, 2024, 60)]
    log10 = np.where(year < 2018.2, 7 + 0.1 * (year - 2012), 8 + 0.6 * (year - 2018.5)) + rng.normal(0, 0.1, 120)
    table = load_zoo(pd.DataFrame({"year": year, "n_params": 10**log10}))
    eras = detect_eras(table.year, table.n_params, metric="n_params", bootstrap=0)
    fig = zoo.metric_vs_year(table, eras)
    labels = [ln.get_label() for ln in _lines(fig.axes[0])]
    assert labels[0].startswith("2012-2018:") and labels[1].startswith("2018-2024:")  # whole years shown
    assert labels[2] == "detected era break"
    assert eras.bounds[0][1] < _lines(fig.axes[0])[2].get_xdata()[0] < eras.bounds[1][0]


def test_extra_figures_draw_the_predictor_from_enough_runs_and_note_what_they_cannot_draw():
    from types import SimpleNamespace

    from robustperf.report.extra import extra_figures

    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "status": "finished",
                          "n_params": rng.choice([1e4, 4e4, 1.6e5], n), "samples_seen": rng.choice([1e4, 1e5], n),
                          "attack_steps": 10, "flops": 10 ** rng.uniform(9, 11, n)})
    frame["robust_acc"] = 0.2 + 0.05 * np.log10(frame.n_params) + rng.normal(0, 0.01, n)
    analysis = SimpleNamespace(frame=frame, surface=None, loss_to_accuracy=None, k=None, notes=[])
    figs = extra_figures(analysis)
    assert set(figs) == {"accuracy_vs_flops_human", "predictor"}  # no law: no overhead figure
    assert "n_params, samples_seen" in figs["predictor"][0]  # attack_steps never varies: not a feature
    analysis.frame = frame.assign(status="failed")
    assert extra_figures(analysis) == {}
    assert any("accuracy_vs_flops_human not drawn" in n for n in analysis.notes)
