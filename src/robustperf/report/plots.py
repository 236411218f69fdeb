"""Report figures: each function takes data (a runs frame, fits) and returns a matplotlib Figure.

Figures are built with the object API on the Agg canvas (no pyplot state, no display needed), so they
can be made in worker processes and tests. A figure with nothing to show says why in its axes and
records the reason (`empty_reason`), so the report can leave it out and print the reason instead.
Fitted accuracies are never drawn above 1; log axes label only as many ticks as fit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ACC_COLOR = "#1f77b4"
LAW_COLOR = "#d62728"
OVERLAY_COLOR = "#7f7f7f"


def _figure(width: float = 6.4, height: float = 4.4, ncols: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


OVERLAY_STYLES = (("#7f7f7f", "s"), ("#2ca02c", "^"), ("#9467bd", "D"), ("#8c564b", "v"))


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes, fontsize=10,
            color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])
    fig = ax.get_figure()
    if fig is not None and len(fig.axes) == 1:
        fig.robustperf_empty = message  # the whole figure is empty: the report omits it with this reason


def empty_reason(fig: Figure) -> str | None:
    """Why a figure has nothing to show, or None if it shows data."""
    return getattr(fig, "robustperf_empty", None)


def _log_axis(ax: Any, which: str = "x") -> None:
    """Log scale with tick labels that never overlap: decades only, at most ~6 labels; minor ticks unlabelled.

    A range under a decade gets labelled 2-3-5 ticks instead of matplotlib's every-minor-tick labels
    (issue 11: "loss vs compute per model size" printed overlapping x labels).
    """
    from matplotlib.ticker import LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    lo, hi = (ax.get_xlim() if which == "x" else ax.get_ylim())
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    if decades >= 1.0:
        axis.set_major_locator(LogLocator(base=10.0, numticks=6))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0), numticks=6))
        axis.set_minor_formatter(NullFormatter())


def overlay_groups(overlay: Any) -> list[tuple[str, Any, str, str]]:
    """(label, rows, colour, marker) per source of an overlay frame, so every point is labelled by its source."""
    if overlay is None or overlay.empty:
        return []
    groups = []
    for i, (label, rows) in enumerate(overlay.groupby("label", sort=False)):
        colour, marker = OVERLAY_STYLES[i % len(OVERLAY_STYLES)]
        groups.append((str(label), rows, colour, marker))
    return groups


def _finished(frame: Any, *cols: str) -> Any:
    sub = frame[frame["status"] == "finished"]
    return sub.dropna(subset=list(cols)) if cols else sub


def accuracy_vs_flops(frame: Any, fit: Any = None, *, envelope_ids: list[str] | None = None, overlay: Any = None,
                      metric: str = "robust_acc", title: str | None = None) -> Figure:
    """Robust accuracy vs training FLOPs, log-log, with the envelope power law (papers/002 Fig. 1 style).

    Args:
        frame: runs frame (`robustperf.report.analysis.runs_frame`).
        fit: FitResult of `fit_envelope_power_law` on these runs, or None.
        envelope_ids: run ids of the envelope points (circled).
        overlay: optional frame with columns ``flops``, ``robust_acc`` and ``label`` (published runs).
        metric: the accuracy column.
        title: figure title.
    """
    fig, ax = _figure()
    data = _finished(frame, "flops", metric)
    data = data[(data["flops"] > 0) & (data[metric] > 0)]
    if data.empty and overlay is None:
        _empty(ax, f"no finished runs with FLOPs and {metric}")
        return fig
    for label, rows, colour, marker in overlay_groups(overlay):
        ax.scatter(rows["flops"], rows["robust_acc"], s=12, color=colour, marker=marker, alpha=0.5, label=label)
    ax.scatter(data["flops"], data[metric], s=28, color=ACC_COLOR, label="runs of this study", zorder=3)
    if fit is not None and fit.usable and not data.empty:
        env = data[data["run_id"].isin(envelope_ids or [])]
        ax.scatter(env["flops"], env[metric], s=70, facecolors="none", edgecolors=LAW_COLOR, label="envelope", zorder=4)
        xs = np.geomspace(data["flops"].min() / 2, data["flops"].max() * 4, 100)
        law = fit.to_law()
        ys = np.asarray(law(xs), dtype=float)
        inside = ys <= 1.0  # a fitted accuracy is never drawn above 1 (issue 11)
        r2 = float("nan") if fit.metrics.r2 is None else fit.metrics.r2
        label = f"{law.C:.3g} x FLOPs^{law.alpha:.3g} (R² {r2:.2f})" + ("" if fit.ok else f" - {fit.caveat()}")
        ax.plot(xs[inside], ys[inside], color=LAW_COLOR, label=label)
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    if data[metric].max() <= 1.0:
        ax.set_ylim(top=min(ax.get_ylim()[1], 1.05))
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{metric.replace('_', ' ')} vs training compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _no_law_reason(surface: Any) -> str:
    if surface is None:
        return ("no L(N, D) law was fitted: the study sets fit.surface to none, or its runs have fewer than "
                "3 model sizes x 3 data sizes (the report's notes say which)")
    if not surface.usable:
        return f"the L(N, D) fit is {surface.status.value}: no allocation is drawn from it (see Sanity flags)"
    law = surface.to_law()
    if not (law.alpha > 0 and law.beta > 0):
        return f"the L(N, D) fit has alpha {law.alpha:.3g}, beta {law.beta:.3g}: no compute-optimal allocation"
    return "no FLOPs-per-parameter-per-sample constant k was measured"


def _drawable(surface: Any, k: float | None) -> bool:
    if surface is None or not surface.usable or not k:
        return False
    law = surface.to_law()
    return bool(law.alpha > 0 and law.beta > 0)


def _caveat_title(title: str, surface: Any) -> str:
    return title if surface is None or surface.ok else f"{title}\n({surface.caveat()})"


def loss_vs_flops(frame: Any, surface: Any = None, *, k: float | None = None) -> Figure:
    """Adversarial loss vs FLOPs, one colour per model size, with the fitted L(N, D) along each size."""
    fig, ax = _figure()
    data = _finished(frame, "flops", "adv_loss", "n_params")
    if data.empty:
        _empty(ax, "no finished runs with FLOPs, adversarial loss and parameter count")
        return fig
    sizes = sorted(data["n_params"].unique())
    cmap = _colormap(len(sizes))
    law = surface.to_law() if _drawable(surface, k) else None
    for color, n in zip(cmap, sizes, strict=True):
        sub = data[data["n_params"] == n].sort_values("flops")
        ax.scatter(sub["flops"], sub["adv_loss"], color=color, s=28, label=f"N = {_si(n)}", zorder=3)
        if law is not None and k and sub["samples_seen"].notna().any():
            d = np.geomspace(max(sub["samples_seen"].min() / 4, 1.0), sub["samples_seen"].max() * 4, 80)
            ax.plot(k * n * d, law(n, d), color=color, alpha=0.8)
    if law is not None and k:
        cs = np.geomspace(data["flops"].min() / 4, data["flops"].max() * 16, 80)
        from robustperf.scaling import optimal_loss

        ax.plot(cs, [optimal_loss(law, c, k=k) for c in cs], color="black", ls="--", label="compute-optimal")
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("adversarial loss")
    title = "loss vs compute per model size" + (f" ({surface.law} fit)" if law is not None else "")
    ax.set_title(_caveat_title(title, surface) if law is not None else title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(sizes) > 4 else 1)
    return fig


def iso_loss_contours(frame: Any, surface: Any, *, k: float | None) -> Figure:
    """Iso-loss contours of L(N, D) with iso-FLOP lines and the compute-optimal N*(C), D*(C) path."""
    fig, ax = _figure()
    data = _finished(frame, "n_params", "samples_seen")
    if not _drawable(surface, k) or k is None:
        _empty(ax, _no_law_reason(surface))
        return fig
    law = surface.to_law()
    n_lo, n_hi = data["n_params"].min() / 4, data["n_params"].max() * 16
    d_lo, d_hi = data["samples_seen"].min() / 4, data["samples_seen"].max() * 16
    nn, dd = np.meshgrid(np.geomspace(n_lo, n_hi, 120), np.geomspace(d_lo, d_hi, 120))
    loss = law(nn, dd)
    cs = ax.contour(nn, dd, loss, levels=12, cmap="viridis")
    ax.clabel(cs, fontsize=7, fmt="%.3g")
    budgets = np.geomspace(k * n_lo * d_lo * 4, k * n_hi * d_hi / 4, 6)
    for c in budgets:
        n_line = np.geomspace(n_lo, n_hi, 50)
        ax.plot(n_line, c / (k * n_line), color="#bbbbbb", lw=0.8)
    from robustperf.scaling import compute_optimal

    path = [compute_optimal(law, c, k=k) for c in np.geomspace(budgets[0], budgets[-1], 40)]
    ax.plot([a.N for a in path], [a.D for a in path], color=LAW_COLOR, lw=2, label="compute-optimal (N*, D*)")
    ax.scatter(data["n_params"], data["samples_seen"], color="black", s=16, zorder=3, label="runs")
    ax.set_xlim(n_lo, n_hi)
    ax.set_ylim(d_lo, d_hi)
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training samples D")
    ax.set_title(_caveat_title("iso-loss contours (grey: iso-FLOP lines)", surface))
    ax.legend(fontsize=8, loc="upper right")
    return fig


def optimal_allocation(frame: Any, surface: Any, *, k: float | None) -> Figure:
    """N*(C) and D*(C) of the fitted law over budgets around (and beyond) the study's."""
    fig, ax = _figure()
    if not _drawable(surface, k) or k is None:
        _empty(ax, _no_law_reason(surface))
        return fig
    from robustperf.scaling import compute_optimal

    law = surface.to_law()
    flops = _finished(frame, "flops")["flops"]
    cs = np.geomspace(max(flops.min() / 10, 1.0), flops.max() * 1e4, 60)
    allocs = [compute_optimal(law, c, k=k) for c in cs]
    ax.plot(cs, [a.N for a in allocs], label="N* (parameters)", color=ACC_COLOR)
    ax.plot(cs, [a.D for a in allocs], label="D* (training samples)", color=LAW_COLOR)
    ax.axvspan(flops.min(), flops.max(), color="#eeeeee", label="budgets of this study")
    if surface.bootstrap is not None:
        lo_n, hi_n, lo_d, hi_d = _allocation_band(surface, cs, k)
        ax.fill_between(cs, lo_n, hi_n, color=ACC_COLOR, alpha=0.15, lw=0, label="95 % bootstrap band")
        ax.fill_between(cs, lo_d, hi_d, color=LAW_COLOR, alpha=0.15, lw=0)
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("compute-optimal N*, D*")
    ax.set_title(_caveat_title(f"compute-optimal allocation (C = {k:.3g} N D)", surface))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _allocation_band(surface: Any, cs: np.ndarray, k: float) -> tuple[np.ndarray, ...]:
    """2.5-97.5 % bands of N*(C) and D*(C) over the bootstrap laws (degenerate resamples left out)."""
    from robustperf.scaling import compute_optimal

    ns, ds = [], []
    for law in surface.bootstrap_laws():
        if law.alpha > 0 and law.beta > 0:
            allocs = [compute_optimal(law, c, k=k) for c in cs]
            ns.append([a.N for a in allocs])
            ds.append([a.D for a in allocs])
    if not ns:
        nan = np.full(len(cs), np.nan)
        return nan, nan, nan, nan
    with np.errstate(all="ignore"):
        n_arr, d_arr = np.array(ns), np.array(ds)
        return (np.nanpercentile(n_arr, 2.5, axis=0), np.nanpercentile(n_arr, 97.5, axis=0),
                np.nanpercentile(d_arr, 2.5, axis=0), np.nanpercentile(d_arr, 97.5, axis=0))


def extrapolation_check(check: Any) -> Figure:
    """Runs the law was refitted on, and the held-out largest runs: observed vs predicted, error per run."""
    fig, ax = _figure()
    if check is None:
        _empty(ax, "no extrapolation check: too few runs to hold the largest out (see Sanity flags)")
        return fig
    ax.scatter(check.train_flops, check.train_observed, s=22, color=ACC_COLOR, alpha=0.6,
               label=f"refit on {check.n_train} runs")
    flops = [r["flops"] for r in check.rows]
    obs = [r["observed"] for r in check.rows]
    pred = [r["predicted"] for r in check.rows]
    ax.scatter(flops, obs, s=40, color="black", label="held out: observed", zorder=3)
    colour = LAW_COLOR if check.large else "#2ca02c"
    ax.scatter(flops, pred, s=70, marker="x", linewidths=2, color=colour, label="held out: predicted", zorder=4)
    for f, o, p in zip(flops, obs, pred, strict=True):
        ax.plot([f, f], [o, p], color=colour, lw=1.5)
    ax.axvspan(check.threshold_flops, max(flops) * 1.5, color="#ffd9a8", lw=0, zorder=0,
               label="held out: top 20 % of compute")
    _log_axis(ax, "x")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(check.metric.replace("_", " "))
    verdict = "LARGE" if check.large else "ok"
    ax.set_title(f"extrapolation check: {check.law}\nmean held-out error {check.mean_abs_error:.1%} ({verdict})",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def pareto(frame: Any, *, cost: str = "energy_kwh", overlay: Any = None) -> Figure:
    """Clean vs robust accuracy coloured by cost, and the robust-accuracy vs cost Pareto front."""
    from robustperf.scaling import pareto_front

    fig, (ax1, ax2) = _figure(10.0, 4.2, ncols=2)
    data = _finished(frame, "clean_acc", "robust_acc")
    cost_col = cost if cost in data and data[cost].notna().any() else "seconds"
    if data.empty:
        _empty(ax1, "no finished runs with clean and robust accuracy")
        _empty(ax2, "no finished runs")
        fig.robustperf_empty = "no finished runs with clean and robust accuracy"  # type: ignore[attr-defined]
        return fig
    for label, rows, colour, marker in overlay_groups(overlay):
        ax1.scatter(rows["clean_acc"], rows["robust_acc"], s=10, color=colour, marker=marker, alpha=0.4, label=label)
    sc = ax1.scatter(data["clean_acc"], data["robust_acc"], c=data[cost_col], cmap="plasma", s=30, zorder=3,
                     label="runs")
    cost_name = cost_col.replace("_", " ")
    if cost_col in ("energy_kwh", "co2_kg", "usd"):  # say whether the energy behind it was metered or estimated
        cost_name += f" ({energy_label(data)})"
    fig.colorbar(sc, ax=ax1, label=cost_name)
    front = pareto_front(data, maximize=["clean_acc", "robust_acc"], minimize=[cost_col])
    ax1.scatter(front["clean_acc"], front["robust_acc"], s=80, facecolors="none", edgecolors="black",
                label="Pareto (clean, robust, cost)")
    ax1.set_xlabel("clean accuracy")
    ax1.set_ylabel("robust accuracy")
    ax1.set_title("clean vs robust accuracy")
    ax1.legend(fontsize=7)
    ax2.scatter(data[cost_col], data["robust_acc"], s=24, color=ACC_COLOR)
    front2 = pareto_front(data, maximize=["robust_acc"], minimize=[cost_col])
    ax2.step(front2[cost_col], front2["robust_acc"], where="post", color=LAW_COLOR, label="Pareto front")
    _log_axis(ax2, "x")
    ax2.set_xlabel(cost_name)
    ax2.set_ylabel("robust accuracy")
    ax2.set_title("robust accuracy vs cost")
    ax2.legend(fontsize=8)
    return fig


COST_PANELS = (("seconds", "time (s)"), ("energy_kwh", "energy (kWh, x PUE)"), ("co2_kg", "CO2 (kg)"),
               ("usd", "cost (USD)"))


def cost_panels(frame: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(panels with data, one reason per panel left out): an empty panel is omitted, never drawn blank."""
    data = _finished(frame)
    drawn, missing = [], []
    for col, label in COST_PANELS:
        values = data.get(col, None)
        if values is None or values.notna().sum() == 0:
            missing.append(f"{label}: no finished run recorded it (energy, CO2 and USD need an energy meter)")
        else:
            drawn.append((col, label))
    return drawn, missing


def cost_breakdown(frame: Any) -> Figure:
    """Time, kWh, CO2 and USD per run (horizontal bars, runs in the same order in every panel).

    Panels without data are left out (`cost_panels` gives the reasons); with no finished run at all the
    figure is empty with a reason.
    """
    data = _finished(frame).sort_values("flops")
    drawn, _ = cost_panels(frame)
    height = max(3.0, 0.22 * len(data) + 1.5)
    if data.empty or not drawn:
        fig, ax = _figure()
        _empty(ax, "no finished run recorded any cost")
        return fig
    fig, axes = _figure(3.0 * len(drawn) + 3.0, height, ncols=len(drawn))
    axes = np.atleast_1d(axes)
    labels = [_short_label(r) for _, r in data.iterrows()]
    energy_note = energy_label(data)
    for ax, (col, label) in zip(axes, drawn, strict=True):
        values = data[col]
        title = label if col == "seconds" else f"{label}\n{energy_note}"
        ax.barh(range(len(data)), values.fillna(0.0), color=ACC_COLOR)
        ax.set_yticks(range(len(data)))
        ax.set_yticklabels(labels if ax is axes[0] else [], fontsize=7)
        ax.set_title(title, fontsize=9)
        # small values (kWh of a CPU run) print as 0.000002...: scientific ticks, few of them, never overlapping
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.invert_yaxis()
    return fig


def energy_label(frame: Any) -> str:
    """Whether a frame's energy figures were metered or estimated: "metered", "estimated", or the mix."""
    from robustperf.cost.energy import energy_method

    sources = frame.get("energy_source", [])
    counts: dict[str, int] = {}
    for src in sources:
        method = energy_method(src if isinstance(src, str) else None)
        if method != "none":
            counts[method] = counts.get(method, 0) + 1
    if not counts:
        return "not measured"
    if len(counts) == 1:
        return next(iter(counts))
    return "mixed: " + ", ".join(f"{n} {m}" for m, n in sorted(counts.items()))


def _short_label(row: Any) -> str:
    parts = [str(row.get("model") or "")]
    if _finite(row.get("n_params")):
        parts.append(f"N={_si(row['n_params'])}")
    if _finite(row.get("samples_seen")):
        parts.append(f"D={_si(row['samples_seen'])}")
    if _finite(row.get("seed")):
        parts.append(f"s{int(row['seed'])}")
    return " ".join(parts)


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _colormap(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]
