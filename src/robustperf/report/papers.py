"""The papers' figures, drawn from our runs, fits or tables: data in, Figure out.

- `accuracy_vs_flops_by_quality` (papers/001 Fig. 1): robust accuracy vs training FLOPs, one colour per
  data quality (FID), the law's compute-optimal accuracy per FID and the human-level line.
- `overhead_vs_model_size` (papers/001 Fig. 7, Eq. 6): the compute overhead of training a model of size
  omega_N x N* to the compute-optimal loss.
- `predictor_figure` (papers/002 Fig. 1b/1c): parity plot of the gradient-boosting predictor on held-out
  runs and its feature importances.
- `asr_vs_round` and `asr_vs_model_size` (papers/000 Figs. 1-4): LLM attack success rate over adversarial
  training rounds with min/median/max over seeds, and against model size.
- The quantile frontier of a model zoo is `robustperf.report.zoo.efficiency_frontier`.

Figures use the object API on the Agg canvas (no pyplot state). A figure with nothing to draw is never
made: the function raises `NoFigure` saying why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

POINT_COLOR = "#1f77b4"
LINE_COLOR = "#d62728"
HUMAN_COLOR = "#e377c2"
# papers/001 Table 4: SOTA + average human on all AutoAttack data (upper bound of average human performance).
HUMAN_LEVEL = 0.9046
HUMAN_LEVEL_SOURCE = "papers/001 Table 4 (SOTA + average human, all data)"
HUMAN_LEVEL_DATASET = "cifar10"  # the data set that human level was measured on


class NoFigure(ValueError):
    """The data hold nothing to draw; the message says what is missing."""


def new_figure(width: float = 6.4, height: float = 4.4, ncols: int = 1) -> tuple[Figure, Any]:
    """A Figure on the Agg canvas with ``ncols`` axes (one axes object when ncols == 1)."""
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _colors(n: int, name: str = "viridis") -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps[name]
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]


def _si(x: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _need(frame: Any, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise NoFigure(f"{what} needs columns {missing}; the data have {sorted(map(str, frame.columns))}")


# ----------------------------------------------------------------------------------------------------------------
# papers/001


def accuracy_vs_flops_by_quality(frame: Any, law: Any = None, *, human_level: float | None = HUMAN_LEVEL,
                                 k: float | None = None, max_flops: float | None = None,
                                 loss_to_accuracy: Any = None, title: str | None = None) -> Figure:
    """Robust accuracy vs training FLOPs per data quality, with the law per FID and the human line (papers/001 Fig. 1).

    Args:
        frame: one row per run with ``flops``, ``robust_acc`` (fraction) and optionally ``fid`` (missing or
            NaN: real data, FID 0).
        law: an N, D law with FID (approach2/approach3; compute-optimal loss mapped to accuracy) or an
            accuracy power law, drawn per FID present in the data; None: points only.
        human_level: the human-level accuracy line (None: no line).
        k: FLOPs per parameter per sample of the law (default: 7822, TRADES-10 WideResNets).
        max_flops: extend the law's curves to this budget (default: 1000 x the largest run).
        loss_to_accuracy: the loss -> accuracy map of an N, D law (default: papers/001 App. F.2.2's).
        title: figure title.
    """
    _need(frame, ["flops", "robust_acc"], "accuracy vs FLOPs")
    data = frame.dropna(subset=["flops", "robust_acc"])
    data = data[data["flops"] > 0]
    if data.empty:
        raise NoFigure("no runs with training FLOPs > 0 and a robust accuracy")
    fid = data["fid"].fillna(0.0).astype(float) if "fid" in data else np.zeros(len(data))
    data = data.assign(fid=np.asarray(fid, float))
    fids = sorted(data["fid"].unique())
    fig, ax = new_figure()
    lo = float(data["flops"].min()) / 3
    hi = float(max_flops) if max_flops else float(data["flops"].max()) * 1e3
    xs = np.geomspace(lo, hi, 80)
    for color, f in zip(_colors(len(fids), "plasma"), fids, strict=True):
        sub = data[data["fid"] == f]
        name = "real data" if f == 0 else f"FID {f:.3g}"
        ax.scatter(sub["flops"], sub["robust_acc"], color=color, s=26, zorder=3, label=f"runs, {name}")
        if law is not None:  # solid over the runs' compute, dashed beyond: an extrapolation
            top = float(data["flops"].max())
            ys = _law_accuracy(law, xs, f, k, loss_to_accuracy)
            inside = xs <= top
            ax.plot(xs[inside], ys[inside], color=color, lw=1.6, label=f"law, {name}")
            ax.plot(xs[xs >= xs[inside][-1]], ys[xs >= xs[inside][-1]], color=color, lw=1.6, ls="--",
                    label=f"law, {name}: extrapolation")
    if human_level is not None:
        ax.axhline(human_level, color=HUMAN_COLOR, lw=2, label=f"human level ({human_level:.1%})")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("robust accuracy")
    ax.set_title(title or "robust accuracy vs compute per data quality")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _law_accuracy(law: Any, flops: np.ndarray, fid: float, k: float | None, to_accuracy: Any) -> np.ndarray:
    from robustperf.scaling import DEFAULT_FLOPS_PER_PARAM_SAMPLE, forecast_accuracy

    kw: dict[str, Any] = {"k": DEFAULT_FLOPS_PER_PARAM_SAMPLE if k is None else k, "fid": fid}
    if to_accuracy is not None:
        kw["loss_to_accuracy"] = to_accuracy
    return np.array([forecast_accuracy(law, float(c), **kw) for c in flops])


def overhead_vs_model_size(law: Any, flops: float, *, fid: float = 0.0, k: float | None = None,
                           omega: Sequence[float] | None = None, models: dict[str, float] | None = None,
                           title: str | None = None) -> Figure:
    """Compute overhead of a non-optimal model size at the compute-optimal loss (papers/001 Fig. 7, Eq. 6).

    Args:
        law: a chinchilla/approach2 law (closed-form N*, D*).
        flops: the budget C whose optimum N*, L* is the reference.
        fid: data quality of the law.
        k: FLOPs per parameter per sample (default 7822).
        omega: model sizes as multiples of N* (default 0.2 ... 5).
        models: name -> parameter count to mark (e.g. {"prior SOTA": 267e6}).
        title: figure title.
    """
    from robustperf.scaling import DEFAULT_FLOPS_PER_PARAM_SAMPLE, compute_optimal, model_size_tradeoff

    kk = DEFAULT_FLOPS_PER_PARAM_SAMPLE if k is None else k
    omegas = np.asarray(omega if omega is not None else np.geomspace(0.2, 5.0, 121), float)
    opt = compute_optimal(law, flops, fid=fid, k=kk)
    over = np.array([model_size_tradeoff(law, flops, float(w), fid=fid, k=kk).overhead for w in omegas])
    finite = np.isfinite(over)
    if not finite.any():
        raise NoFigure(f"no model size in {omegas.min():.3g}-{omegas.max():.3g} x N* reaches the optimal loss")
    fig, ax = new_figure()
    ax.plot(omegas[finite] * opt.N, 100 * over[finite], color=LINE_COLOR, lw=2, label="overhead to reach L*")
    ax.axvline(opt.N, color="#555555", ls=":", label=f"N* = {_si(opt.N)} (L* = {opt.loss:.3f})")
    for i, (name, n) in enumerate((models or {}).items()):
        t = model_size_tradeoff(law, flops, n / opt.N, fid=fid, k=kk)
        y = 100 * t.overhead if math.isfinite(t.overhead) else np.nan
        ax.scatter([n], [y], s=50, zorder=4, color=_colors(max(2, len(models or {})), "tab10")[i],
                   label=f"{name}: {_si(n)}, " + (f"+{y:.1f} %" if math.isfinite(y) else "never reaches L*"))
    if (~finite).any():
        ax.axvspan(omegas[~finite].min() * opt.N, omegas[~finite].max() * opt.N, color="#eeeeee",
                   label="cannot reach L* with any data")
    ax.set_xscale("log")
    ax.set_ylim(-2, min(300.0, 1.05 * float(100 * over[finite].max())) + 2)  # papers/001 Fig. 7: a linear axis
    ax.set_xlabel("parameters N")
    ax.set_ylabel("compute overhead (%)")
    ax.set_title(title or f"overhead vs model size at C = {flops:.3g} FLOPs" + (f", FID {fid:g}" if fid else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# papers/002


def predictor_figure(result: Any, *, target: str = "robust accuracy") -> Figure:
    """Parity plot on the held-out runs and feature importances of a `PredictorResult` (papers/002 Fig. 1b/1c)."""
    y_true = np.asarray(getattr(result, "y_test", ()), float)
    y_pred = np.asarray(getattr(result, "y_test_pred", ()), float)
    if y_true.size == 0 or not result.importances:
        raise NoFigure("the predictor result holds no held-out predictions or importances")
    fig, (ax1, ax2) = new_figure(10.5, 4.4, ncols=2)
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    pad = 0.05 * (hi - lo or 1.0)
    ax1.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#555555", ls="--", lw=1, label="y = x")
    ax1.scatter(y_true, y_pred, s=24, color=POINT_COLOR, zorder=3,
                label=f"held-out runs ({len(y_true)}), R² {result.r2_test:.3f}")
    ax1.set_xlim(lo - pad, hi + pad)
    ax1.set_ylim(lo - pad, hi + pad)
    ax1.set_xlabel(f"measured {target}")
    ax1.set_ylabel(f"predicted {target}")
    ax1.set_title("predicted vs measured (test split)")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8, loc="upper left")
    names = list(result.importances)[::-1]
    ax2.barh(names, [result.importances[n] for n in names], color=POINT_COLOR)
    ax2.set_xlabel("impurity importance")
    ax2.set_title("feature importance")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# papers/000


def llm_round_table(frame: Any) -> Any:
    """min/median/max ASR per (model, n_params, task, attack, eval_attack, round) from either CSV of an LLM study.

    Accepts ``<name>_asr_vs_round.csv`` (already reduced: asr_min, asr_median, asr_max) or
    ``<name>_rounds.csv`` (one row per run and round: seed, asr), which is reduced here.
    """
    if {"asr_min", "asr_median", "asr_max"} <= set(frame.columns):
        table = frame.copy()
    else:
        _need(frame, ["model", "round", "asr"], "an LLM round table")
        keys = [c for c in ("model", "n_params", "task", "attack", "eval_attack", "round") if c in frame.columns]
        grouped = frame.dropna(subset=["asr"]).groupby(keys, dropna=False)["asr"]
        table = grouped.agg(asr_min="min", asr_median="median", asr_max="max", n_seeds="count").reset_index()
    for col in ("n_params", "task", "attack", "eval_attack"):
        if col not in table.columns:
            table[col] = np.nan if col == "n_params" else ""
    return table.dropna(subset=["asr_median"])


def _panels(table: Any) -> list[tuple[str, Any]]:
    out = []
    for (task, attack, eval_attack), sub in table.groupby(["task", "attack", "eval_attack"], dropna=False, sort=True):
        trained = f"trained vs {attack}" if str(attack) not in ("", "nan") else ""
        evaluated = f", attacked by {eval_attack}" if str(eval_attack) not in ("", "nan", str(attack)) else ""
        out.append((f"{task}: {trained}{evaluated}".strip(": "), sub))
    return out


def _model_label(sub: Any) -> str:
    n = sub["n_params"].iloc[0]
    return f"{sub['model'].iloc[0]} ({_si(float(n))})" if n == n and n is not None else str(sub["model"].iloc[0])


def asr_vs_round(frame: Any, *, title: str | None = None) -> Figure:
    """Attack success rate over adversarial-training rounds, median line and min-max band over seeds per model size.

    One panel per (task, training attack, evaluation attack): papers/000 Fig. 2 (same attack), Fig. 3
    (stronger attack) and Fig. 4 (transfer RandomToken -> GCG).
    """
    table = llm_round_table(frame)
    if table.empty:
        raise NoFigure("no rounds with an attack success rate")
    panels = _panels(table)
    fig, axes = new_figure(5.2 * len(panels), 4.2, ncols=len(panels))
    for ax, (name, sub) in zip(np.atleast_1d(axes), panels, strict=True):
        sizes = sorted(sub.groupby("model", sort=False), key=lambda kv: float(kv[1]["n_params"].fillna(0).iloc[0]))
        for color, (_, rows) in zip(_colors(len(sizes)), sizes, strict=True):
            rows = rows.sort_values("round")
            ax.plot(rows["round"], rows["asr_median"], color=color, marker="o", ms=3, label=_model_label(rows))
            ax.fill_between(rows["round"], rows["asr_min"], rows["asr_max"], color=color, alpha=0.2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("adversarial training round (0 = fine-tuned only)")
        ax.set_ylabel("attack success rate")
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, title="model (shaded: min-max over seeds)", title_fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def asr_vs_model_size(frame: Any, *, rounds: Sequence[int | str] = (0, "last"), title: str | None = None) -> Figure:
    """Attack success rate vs parameters with min/median/max over seeds, at chosen rounds (papers/000 Fig. 1).

    Args:
        frame: an LLM study CSV (`llm_round_table`) with ``n_params``.
        rounds: rounds to draw (0 = fine-tuned only, "last" = each model's last round).
        title: figure title.
    """
    table = llm_round_table(frame).dropna(subset=["n_params"])
    if table.empty:
        raise NoFigure("no rounds with both an attack success rate and a parameter count")
    panels = _panels(table)
    fig, axes = new_figure(5.2 * len(panels), 4.2, ncols=len(panels))
    colors = _colors(len(rounds), "tab10")
    for ax, (name, sub) in zip(np.atleast_1d(axes), panels, strict=True):
        for color, which in zip(colors, rounds, strict=True):
            if which == "last":
                rows = sub.loc[sub.groupby("model")["round"].idxmax()]
                label = "last round"
            else:
                rows = sub[sub["round"] == int(which)]
                label = "fine-tuned only (round 0)" if int(which) == 0 else f"round {int(which)}"
            if rows.empty:
                continue
            rows = rows.sort_values("n_params")
            err = [rows["asr_median"] - rows["asr_min"], rows["asr_max"] - rows["asr_median"]]
            ax.errorbar(rows["n_params"], rows["asr_median"], yerr=err, color=color, marker="o", capsize=3,
                        label=label)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("parameters")
        ax.set_ylabel("attack success rate (median, min-max over seeds)")
        ax.set_title(name, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
