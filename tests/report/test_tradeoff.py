"""The TRADES beta sweep's Pareto front: drawn from a planted sweep, in the report only when beta varies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustperf.report.tradeoff import has_tradeoff_sweep, tradeoff_front

# planted sweep: clean accuracy falls and robust accuracy rises with beta until beta = 4, then both fall,
# so betas 0.5..4 are the front and 8 is dominated by 4; one pgd_at run must be left out.
BETAS = [0.5, 1.0, 2.0, 4.0, 8.0]
CLEAN = [0.95, 0.93, 0.90, 0.86, 0.84]
ROBUST = [0.30, 0.38, 0.44, 0.48, 0.46]


def sweep_frame() -> pd.DataFrame:
    rows = [{"method": "trades", "status": "finished", "beta": b, "clean_acc": c, "robust_acc": r, "flops": 1e12}
            for b, c, r in zip(BETAS, CLEAN, ROBUST, strict=True)]
    rows.append({"method": "pgd_at", "status": "finished", "beta": 6.0, "clean_acc": 0.99, "robust_acc": 0.99,
                 "flops": 1e12})
    rows.append({"method": "trades", "status": "failed", "beta": 16.0, "clean_acc": np.nan, "robust_acc": np.nan,
                 "flops": np.nan})
    return pd.DataFrame(rows)


def test_front_joins_the_non_dominated_betas() -> None:
    frame = sweep_frame()
    assert has_tradeoff_sweep(frame)
    fig = tradeoff_front(frame)
    ax = fig.axes[0]
    (front,) = [line for line in ax.get_lines() if line.get_label().startswith("Pareto front")]
    assert list(front.get_xdata()) == sorted(CLEAN[:4])  # beta 8 dominated by 4; pgd_at's run not drawn
    assert list(front.get_ydata()) == [0.48, 0.44, 0.38, 0.30]
    assert front.get_label() == "Pareto front (4 of 5 runs)"
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == sorted(f"{b:g}" for b in BETAS)
    assert "5e+12 flops" in fig.axes[-1].get_title() or "5e+12 flops" in fig.axes[1].get_title()


def test_no_sweep_no_figure() -> None:
    frame = sweep_frame()
    one_beta = frame[(frame["beta"] == 2.0) | (frame["method"] != "trades")]
    assert not has_tradeoff_sweep(one_beta)
    assert not has_tradeoff_sweep(frame.drop(columns=["beta"]))
    fig = tradeoff_front(one_beta)
    assert "two or more values of beta" in fig.axes[0].texts[0].get_text()


def test_the_report_adds_the_figure_for_a_beta_sweep() -> None:
    from robustperf.report.analysis import Analysis
    from robustperf.report.html import _tradeoff_figures

    assert set(_tradeoff_figures(Analysis(frame=sweep_frame(), robust_source="final.robust_acc"))) == {
        "tradeoff_front"}
    assert _tradeoff_figures(Analysis(frame=sweep_frame().drop(columns=["beta"]), robust_source="x")) == {}
