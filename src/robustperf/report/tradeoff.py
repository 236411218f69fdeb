"""The accuracy-robustness trade-off of one regulariser, drawn as a Pareto front (papers/004: "we will
generate the Pareto front by varying lambda" instead of tuning it; TRADES' beta is that lambda).

Data in, Figure out, like `robustperf.report.plots`; the front itself is `robustperf.scaling.pareto_front`
(clean and robust accuracy, both maximised).
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from robustperf.report.plots import ACC_COLOR, LAW_COLOR, _empty, _figure, _finished


def has_tradeoff_sweep(frame: Any, *, by: str = "beta", method: str = "trades") -> bool:
    """True when ``frame`` holds finished ``method`` runs at two or more values of ``by``."""
    if by not in frame or "method" not in frame:
        return False
    runs = _finished(frame, "clean_acc", "robust_acc", by)
    return bool(runs[runs["method"] == method][by].nunique() >= 2)


def tradeoff_front(frame: Any, *, by: str = "beta", method: str = "trades", cost: str = "flops") -> Figure:
    """Clean vs robust accuracy of ``method``'s runs, each labelled with its ``by`` value, and their front.

    Left: every run (colour: ``by``), the non-dominated ones joined as the Pareto front. Right: both
    accuracies against ``by`` (mean over seeds), so the value that buys robustness at a given clean-accuracy
    price can be read off; the total ``cost`` of the sweep is in the title (what the front cost to draw).

    Args:
        frame: the report's runs frame (`robustperf.report.runs_frame`), with a ``by`` column.
        by: the swept regulariser's column ("beta").
        method: the method whose runs are drawn.
        cost: a cost column summed over the drawn runs for the title ("flops", "energy_kwh", "seconds").
    """
    from robustperf.scaling import pareto_front

    fig, (ax1, ax2) = _figure(10.0, 4.2, ncols=2)
    if by not in frame or "method" not in frame:
        _empty(ax1, f"no {by!r} column in the runs")
        _empty(ax2, "")
        return fig
    runs = _finished(frame, "clean_acc", "robust_acc", by)
    runs = runs[runs["method"] == method]
    if runs[by].nunique() < 2:
        _empty(ax1, f"needs finished {method} runs at two or more values of {by}")
        _empty(ax2, "")
        return fig
    sc = ax1.scatter(runs["clean_acc"], runs["robust_acc"], c=runs[by], cmap="viridis", s=36, zorder=3)
    fig.colorbar(sc, ax=ax1, label=by)
    for _, row in runs.iterrows():
        ax1.annotate(f"{row[by]:g}", (row["clean_acc"], row["robust_acc"]), textcoords="offset points",
                     xytext=(4, 4), fontsize=7)
    front = pareto_front(runs, maximize=["clean_acc", "robust_acc"]).sort_values("clean_acc")
    ax1.plot(front["clean_acc"], front["robust_acc"], color=LAW_COLOR, marker="o", mfc="none", ms=10,
             label=f"Pareto front ({len(front)} of {len(runs)} runs)")
    ax1.set_xlabel("clean accuracy")
    ax1.set_ylabel("robust accuracy")
    ax1.set_title(f"{method}: clean vs robust accuracy by {by}")
    ax1.legend(fontsize=8)
    means = runs.groupby(by)[["clean_acc", "robust_acc"]].mean().sort_index()
    ax2.plot(means.index, means["clean_acc"], marker="o", color=ACC_COLOR, label="clean")
    ax2.plot(means.index, means["robust_acc"], marker="s", color=LAW_COLOR, label="robust")
    ax2.set_xlabel(by)
    ax2.set_ylabel("accuracy")
    spent = runs[cost].sum() if cost in runs and runs[cost].notna().any() else None
    ax2.set_title(f"accuracy vs {by}" + (f" (sweep: {spent:.3g} {cost})" if spent is not None else ""))
    ax2.legend(fontsize=8)
    return fig


__all__ = ["has_tradeoff_sweep", "tradeoff_front"]
