"""The study report: analysis of run records, figures (data in, Figure out), tables and a self-contained HTML page.

>>> from robustperf.report import build_report
>>> build_report("runs", "runs/reports/all")  # doctest: +SKIP
"""

from robustperf.report.analysis import Analysis, analyze, collect_flags, runs_frame
from robustperf.report.html import build_report, make_figures
from robustperf.report.plots import (
    accuracy_vs_flops,
    cost_breakdown,
    iso_loss_contours,
    loss_vs_flops,
    optimal_allocation,
    pareto,
)
from robustperf.report.tables import forecast_table, leaderboard_table, load_overlay

__all__ = [
    "Analysis",
    "accuracy_vs_flops",
    "analyze",
    "build_report",
    "collect_flags",
    "cost_breakdown",
    "forecast_table",
    "iso_loss_contours",
    "leaderboard_table",
    "load_overlay",
    "loss_vs_flops",
    "make_figures",
    "optimal_allocation",
    "pareto",
    "runs_frame",
]
