"""Figures of a model zoo's trends (papers/004 Sec. XIV): data in, Figure out.

- `metric_vs_year`: parameters / forward FLOPs / training FLOPs against year (log scale) with the
  log-linear fit of each era and its doubling time.
- `accuracy_vs_year`: robust accuracy against year with the bounded trend, its interval and forecasts.
- `efficiency_frontier`: robust accuracy against compute, coloured by year, with the 0.9-quantile frontier
  (Thompson et al. 2020) drawn for a few years.
- `study_vs_zoo`: this study's runs against the zoo (robust accuracy vs parameters), and `zoo_figures`, the
  report's hook that adds it when a zoo table is among the report's overlays.

A figure with nothing to draw is never made: the function raises `NoFigure` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from robustperf.report.papers import LINE_COLOR, POINT_COLOR, NoFigure, new_figure

log = logging.getLogger(__name__)

METRIC_LABELS = {"n_params": "parameters", "fwd_flops": "forward FLOPs per image", "train_flops": "training FLOPs"}
ERA_COLORS = ("#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _years_colorbar(fig: Figure, ax: Any, sc: Any) -> None:
    cb = fig.colorbar(sc, ax=ax, label="year")
    cb.ax.yaxis.set_major_formatter("{x:.0f}")


def metric_vs_year(zoo: Any, eras: Any, *, title: str | None = None) -> Figure:
    """One quantity of the zoo against year with the fitted trend of each era.

    Args:
        zoo: a `load_zoo` frame.
        eras: the `Eras` of this quantity (`detect_eras`, `fit_eras` or `zoo_trends(...).trends[metric]`).
        title: figure title.
    """
    metric = eras.metric
    data = zoo.dropna(subset=["year", metric])
    data = data[data[metric] > 0]
    if data.empty:
        raise NoFigure(f"no models with a year and {METRIC_LABELS.get(metric, metric)}")
    fig, ax = new_figure()
    ax.scatter(data["year"], data[metric], s=18, color=POINT_COLOR, alpha=0.6, label=f"models ({len(data)})")
    for i, (trend, (lo, hi)) in enumerate(zip(eras.trends, eras.bounds, strict=True)):
        xs = np.linspace(lo, hi, 50)
        d = trend.doubling_years
        ci = "" if d.low is None else f" [{d.low:.2g}, {d.high:.2g}]"
        ax.plot(xs, trend.predict(xs), color=ERA_COLORS[i % len(ERA_COLORS)], lw=2,
                label=f"{lo:.0f}-{hi:.0f}: doubling {d.value:.2g}{ci} y, R² {trend.r2:.2f}")
    if eras.breakpoint is not None:  # between the last model of the first era and the first of the second
        ax.axvline((eras.bounds[0][1] + eras.bounds[1][0]) / 2, color="#555555", ls=":", lw=1,
                   label="detected era break")
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title or f"{METRIC_LABELS.get(metric, metric)} vs year")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def accuracy_vs_year(zoo: Any, trend: Any, *, until: float | None = None, targets: Sequence[float] = (),
                     title: str | None = None) -> Figure:
    """Robust accuracy against year: every model, the fitted points, the bounded trend and its interval.

    Args:
        zoo: a `load_zoo` frame.
        trend: an `AccuracyTrend`.
        until: extend the curve to this year (default: the last target, or the last year + 3).
        targets: years to mark with their forecast and interval.
        title: figure title.
    """
    data = zoo.dropna(subset=["year", "robust_acc"])
    if data.empty:
        raise NoFigure("no models with a year and a robust accuracy")
    end = until if until is not None else max([*targets, float(data["year"].max()) + 3])
    fig, ax = new_figure()
    ax.scatter(data["year"], data["robust_acc"], s=14, color="#999999", alpha=0.6, label="models")
    ax.scatter(trend.years, trend.accuracy, s=40, color=POINT_COLOR, zorder=3,
               label=f"fitted ({trend.selection.replace('_', ' ')})")
    xs = np.linspace(trend.year0, end, 100)
    mid, lo, hi = trend.curve(xs)
    ax.plot(xs, mid, color=LINE_COLOR, lw=2, label=f"logit trend (ceiling {trend.ceiling:g})")
    if lo is not None:
        ax.fill_between(xs, lo, hi, color=LINE_COLOR, alpha=0.15, label=f"{trend.level:.0%} bootstrap interval")
    for year in targets:
        e = trend.predict(year)
        yerr = None if e.low is None else [[e.value - e.low], [e.high - e.value]]
        ax.errorbar([year], [e.value], yerr=yerr, fmt="D", color="black", capsize=3)
        ax.annotate(f"{year:g}: {e.value:.3f}", (year, e.value), textcoords="offset points", xytext=(-60, 8),
                    fontsize=8)
    ax.axhline(trend.ceiling, color="#555555", ls=":", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("year")
    ax.set_ylabel("robust accuracy")
    ax.set_title(title or "robust accuracy vs year")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def efficiency_frontier(zoo: Any, frontier: Any, *, years: Sequence[float] | None = None,
                        title: str | None = None) -> Figure:
    """Robust accuracy against compute coloured by year, with the quantile frontier of chosen years.

    Args:
        zoo: a `load_zoo` frame.
        frontier: an `EfficiencyFrontier` fitted on it.
        years: years to draw the frontier for (default: the first and last year of the data).
        title: figure title.
    """
    compute = frontier.fit.metrics.compute or "fwd_flops"
    data = zoo.dropna(subset=["year", "robust_acc", compute])
    data = data[data[compute] > 0]
    if data.empty:
        raise NoFigure(f"no models with a year, a robust accuracy and {compute}")
    fig, ax = new_figure()
    sc = ax.scatter(data[compute], data["robust_acc"], c=data["year"], cmap="viridis", s=24, zorder=3)
    _years_colorbar(fig, ax, sc)
    xs = np.geomspace(data[compute].min() / 2, data[compute].max() * 4, 80)
    chosen = list(years) if years else sorted({float(data["year"].min()), float(data["year"].max())})
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    lo_y, hi_y = float(data["year"].min()), float(data["year"].max())
    for year in chosen:
        shade = cmap((year - lo_y) / (hi_y - lo_y) if hi_y > lo_y else 0.5)
        ax.plot(xs, frontier.accuracy(xs, year), color=shade, lw=2, label=f"{frontier.quantile:g}-quantile, {year:g}")
    p = frontier.fit.params
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel(METRIC_LABELS.get(compute, compute))
    ax.set_ylabel("robust accuracy")
    ax.set_title(title or f"efficiency frontier: log10(1/err) = {p['alpha']:.3g} + {p['beta']:.3g} log10(C) "
                          f"+ {p['gamma']:.3g} (year - {frontier.year0:g})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def study_vs_zoo(frame: Any, zoo: Any, *, label: str = "zoo") -> Figure:
    """Robust accuracy against parameters: the study's finished runs over the zoo (coloured by year).

    Args:
        frame: the report's runs frame (columns status, n_params, robust_acc).
        zoo: a `load_zoo` frame.
        label: what the zoo is, for the legend.
    """
    runs = frame[frame["status"] == "finished"].dropna(subset=["n_params", "robust_acc"]) if len(frame) else frame
    models = zoo.dropna(subset=["n_params", "robust_acc"])
    if runs.empty or models.empty:
        raise NoFigure("needs finished runs with parameters and robust accuracy, and zoo models with both "
                       f"({len(runs)} runs, {len(models)} zoo models)")
    fig, ax = new_figure()
    sc = ax.scatter(models["n_params"], models["robust_acc"], c=models["year"], cmap="viridis", s=20, alpha=0.7,
                    label=f"{label} ({len(models)} models)")
    _years_colorbar(fig, ax, sc)
    ax.scatter(runs["n_params"], runs["robust_acc"], marker="*", s=120, color="#d62728", edgecolors="black",
               zorder=4, label=f"this study ({len(runs)} runs)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("parameters")
    ax.set_ylabel("robust accuracy")
    ax.set_title("this study against the zoo")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def zoo_figures(frame: Any, overlays: Sequence[str | Path]) -> dict[str, tuple[str, Figure]]:
    """The report hook: for each overlay that is a zoo table (year, parameters, accuracy), the study against it.

    Overlays that are not zoo tables are left to the other figures; a zoo that cannot be drawn against
    these runs is logged and skipped.
    """
    from robustperf.scaling.result import ScalingError
    from robustperf.scaling.trends import load_zoo

    out: dict[str, tuple[str, Figure]] = {}
    datasets = set(frame["dataset"].dropna().astype(str)) if "dataset" in frame else set()
    for path in overlays:
        try:
            zoo = load_zoo(path)
        except (ScalingError, FileNotFoundError):
            continue
        if zoo["n_params"].notna().sum() == 0:
            continue
        zoo, label = _same_dataset(zoo, datasets, Path(path).stem)
        try:
            fig = study_vs_zoo(frame, zoo, label=label)
        except NoFigure as why:
            log.info("no study-vs-zoo figure for %s: %s", path, why)
            continue
        out[f"study_vs_zoo_{Path(path).stem}"] = (
            f"Robust accuracy vs parameters: this study's runs against {label} (papers/004 Sec. XIV.C).", fig)
    return out


def _same_dataset(zoo: Any, datasets: set[str], name: str) -> tuple[Any, str]:
    """The zoo's models of the study's data set; else its CIFAR-10 models (never several data sets mixed)."""
    same = zoo[zoo["dataset"].isin(datasets)]
    if len(same):
        return same, f"{name} ({', '.join(sorted(datasets))})"
    present = sorted(set(zoo["dataset"].dropna().astype(str)) - {""})
    if len(present) <= 1:
        return zoo, name
    pick = "cifar10" if "cifar10" in present else present[0]
    return zoo[zoo["dataset"] == pick], f"{name} ({pick}; the study's data set is not in it)"


def trend_figures(result: Any) -> dict[str, Figure]:
    """name -> Figure for every part of a `ZooTrends` that was fitted (skipped parts draw nothing)."""
    suffix = f" ({result.label})" if result.label else ""
    out: dict[str, Figure] = {}
    for metric, eras in result.trends.items():
        out[f"{metric}_vs_year"] = metric_vs_year(result.zoo, eras,
                                                  title=f"{METRIC_LABELS.get(metric, metric)} vs year{suffix}")
    if result.accuracy is not None:
        out["robust_acc_vs_year"] = accuracy_vs_year(result.zoo, result.accuracy, targets=result.target_years,
                                                     title=f"robust accuracy vs year{suffix}")
    if result.frontier is not None:
        out["efficiency_frontier"] = efficiency_frontier(result.zoo, result.frontier)
    return out


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure atomically; the format follows the suffix (.png, .svg, .pdf)."""
    import io

    from robustperf.store.io import write_bytes_atomic

    target = Path(path)
    fmt = target.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"cannot write a figure as {target.name!r}: use .png, .svg or .pdf")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    write_bytes_atomic(target, buf.getvalue())
    return target
