"""Report figures: each function takes data (a runs frame, fits) and returns a matplotlib Figure.

Figures are built with the object API on the Agg canvas (no pyplot state, no display needed), so they
can be made in worker processes and tests. A figure with nothing to show says why in its axes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ACC_COLOR = "#1f77b4"
LAW_COLOR = "#d62728"
OVERLAY_COLOR = "#7f7f7f"


def _figure(width: float = 6.4, height: float = 4.4, ncols: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes, fontsize=10,
            color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


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
    if overlay is not None and not overlay.empty:
        ax.scatter(overlay["flops"], overlay["robust_acc"], s=12, color=OVERLAY_COLOR, alpha=0.5,
                   label=str(overlay["label"].iloc[0]))
    ax.scatter(data["flops"], data[metric], s=28, color=ACC_COLOR, label="runs of this study", zorder=3)
    if fit is not None and fit.ok:
        env = data[data["run_id"].isin(envelope_ids or [])]
        ax.scatter(env["flops"], env[metric], s=70, facecolors="none", edgecolors=LAW_COLOR, label="envelope", zorder=4)
        xs = np.geomspace(data["flops"].min() / 2, data["flops"].max() * 4, 100)
        law = fit.to_law()
        r2 = fit.metrics.get("r2", float("nan"))
        ax.plot(xs, law(xs), color=LAW_COLOR, label=f"{law.C:.3g} x FLOPs^{law.alpha:.3g} (R² {r2:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{metric.replace('_', ' ')} vs training compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _no_law_reason(surface: Any) -> str:
    if surface is None:
        return "no L(N, D) law was fitted (needs >= 3 model sizes x 3 data sizes)"
    if not surface.ok:
        return f"the L(N, D) fit is {surface.status}: no allocation is drawn from it (see Sanity flags)"
    return "no FLOPs-per-parameter-per-sample constant k was measured"


def loss_vs_flops(frame: Any, surface: Any = None, *, k: float | None = None) -> Figure:
    """Adversarial loss vs FLOPs, one colour per model size, with the fitted L(N, D) along each size."""
    fig, ax = _figure()
    data = _finished(frame, "flops", "adv_loss", "n_params")
    if data.empty:
        _empty(ax, "no finished runs with FLOPs, adversarial loss and parameter count")
        return fig
    sizes = sorted(data["n_params"].unique())
    cmap = _colormap(len(sizes))
    law = surface.to_law() if surface is not None and surface.ok else None
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("adversarial loss")
    ax.set_title("loss vs compute per model size" + (f" ({surface.law} fit)" if law is not None else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def iso_loss_contours(frame: Any, surface: Any, *, k: float | None) -> Figure:
    """Iso-loss contours of L(N, D) with iso-FLOP lines and the compute-optimal N*(C), D*(C) path."""
    fig, ax = _figure()
    data = _finished(frame, "n_params", "samples_seen")
    if surface is None or not surface.ok or not k:
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(n_lo, n_hi)
    ax.set_ylim(d_lo, d_hi)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training samples D")
    ax.set_title("iso-loss contours (grey: iso-FLOP lines)")
    ax.legend(fontsize=8, loc="upper right")
    return fig


def optimal_allocation(frame: Any, surface: Any, *, k: float | None) -> Figure:
    """N*(C) and D*(C) of the fitted law over budgets around (and beyond) the study's."""
    fig, ax = _figure()
    if surface is None or not surface.ok or not k:
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("compute-optimal N*, D*")
    ax.set_title(f"compute-optimal allocation (C = {k:.3g} N D)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
        return fig
    if overlay is not None and not overlay.empty:
        ax1.scatter(overlay["clean_acc"], overlay["robust_acc"], s=10, color=OVERLAY_COLOR, alpha=0.4,
                    label=str(overlay["label"].iloc[0]))
    sc = ax1.scatter(data["clean_acc"], data["robust_acc"], c=data[cost_col], cmap="plasma", s=30, zorder=3,
                     label="runs")
    fig.colorbar(sc, ax=ax1, label=cost_col)
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
    ax2.set_xscale("log")
    ax2.set_xlabel(cost_col.replace("_", " "))
    ax2.set_ylabel("robust accuracy")
    ax2.set_title("robust accuracy vs cost")
    ax2.legend(fontsize=8)
    return fig


COST_PANELS = (("seconds", "time (s)"), ("energy_kwh", "energy (kWh, x PUE)"), ("co2_kg", "CO2 (kg)"),
               ("usd", "cost (USD)"))


def cost_breakdown(frame: Any) -> Figure:
    """Time, kWh, CO2 and USD per run (horizontal bars, runs in the same order in every panel)."""
    data = _finished(frame).sort_values("flops")
    height = max(3.0, 0.22 * len(data) + 1.5)
    fig, axes = _figure(12.0, height, ncols=4)
    labels = [_short_label(r) for _, r in data.iterrows()]
    energy_note = energy_label(data)
    for ax, (col, label) in zip(axes, COST_PANELS, strict=True):
        title = label if col == "seconds" else f"{label}\n{energy_note}"
        values = data.get(col, None)
        if values is None or values.notna().sum() == 0:
            _empty(ax, f"no {label} recorded\n(set cost.energy_meter=auto, or cost.watts for an estimate)")
            ax.set_title(label)
            continue
        ax.barh(range(len(data)), values.fillna(0.0), color=ACC_COLOR)
        ax.set_yticks(range(len(data)))
        ax.set_yticklabels(labels if ax is axes[0] else [], fontsize=7)
        ax.set_title(title, fontsize=9)
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
