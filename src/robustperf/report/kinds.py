"""`robustperf plot KIND DATA`: every paper and zoo figure by name, from a file (table, runs directory, fit).

Each kind is a `PlotKind` in the `PLOTS` registry: a loader from ``DATA`` plus the options it accepts.
``build_plot("frontier", "leaderboard.csv", dataset="cifar10")`` returns the Figure; an option a kind does
not take is an error that lists the ones it does, and nothing to draw raises `NoFigure` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from robustperf.registry import Registry
from robustperf.report import papers, zoo
from robustperf.store.schema import CONFIG_SYNTHETIC_FID, COST, FINAL


@dataclass(frozen=True)
class PlotKind:
    """A figure reachable from the CLI.

    Attributes:
        build: (data path or name, **options) -> Figure.
        data: what DATA must be, for the help text.
        options: the keyword options ``build`` accepts.
        source: the paper figure it reproduces.
    """

    build: Callable[..., Figure]
    data: str
    options: tuple[str, ...]
    source: str


PLOTS: Registry[PlotKind] = Registry("plot kind")


def build_plot(kind: str, data: str | Path, **options: Any) -> Figure:
    """The figure of ``kind`` from ``data``; options left as None are not passed."""
    entry = PLOTS.get(kind)
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(given) - set(entry.options))
    if wrong:
        flags = ", ".join(f"--{w.replace('_', '-')}" for w in wrong)
        allowed = ", ".join(f"--{o.replace('_', '-')}" for o in entry.options) or "none"
        raise ValueError(f"{flags} does not apply to plot {kind!r}; its options: {allowed}")
    return entry.build(data, **given)


# ----------------------------------------------------------------------------------------------------------------
# zoo kinds


def _zoo(data: str | Path, dataset: str | None) -> Any:
    from robustperf.scaling.trends import load_zoo

    return load_zoo(data, dataset=dataset)


def _metric_vs_year(metric: str) -> Callable[..., Figure]:
    def build(data: str | Path, *, dataset: str | None = None, eras: str | None = None, bootstrap: int = 1000,
              seed: int = 0) -> Figure:
        from robustperf.scaling.trends import detect_eras, fit_eras, parse_eras

        table = _zoo(data, dataset)
        kw: dict[str, Any] = {"metric": metric, "bootstrap": bootstrap, "seed": seed}
        fitted = (fit_eras(table["year"], table[metric], parse_eras(eras), **kw) if eras
                  else detect_eras(table["year"], table[metric], **kw))
        return zoo.metric_vs_year(table, fitted, title=f"{zoo.METRIC_LABELS[metric]} vs year" +
                                  (f" ({dataset})" if dataset else ""))

    return build


def _accuracy_vs_year(data: str | Path, *, dataset: str | None = None, target_year: float = 2027,
                      ceiling: float = 1.0, select: str = "best_per_year", bootstrap: int = 1000,
                      seed: int = 0) -> Figure:
    from robustperf.scaling.trends import fit_accuracy_trend

    table = _zoo(data, dataset)
    trend = fit_accuracy_trend(table["year"], table["robust_acc"], select=select, ceiling=ceiling,
                               bootstrap=bootstrap, seed=seed)
    return zoo.accuracy_vs_year(table, trend, targets=[target_year],
                                title="robust accuracy vs year" + (f" ({dataset})" if dataset else ""))


def _frontier(data: str | Path, *, dataset: str | None = None, quantile: float = 0.9, bootstrap: int = 200,
              seed: int = 0) -> Figure:
    from robustperf.scaling.trends import fit_efficiency_frontier

    table = _zoo(data, dataset)
    compute = "train_flops" if table["train_flops"].notna().sum() >= 5 else "fwd_flops"
    frontier = fit_efficiency_frontier(table[compute], table["robust_acc"], table["year"], quantile=quantile,
                                       bootstrap=bootstrap, seed=seed, compute_name=compute)
    return zoo.efficiency_frontier(table, frontier)


# ----------------------------------------------------------------------------------------------------------------
# paper kinds

_RUN_ALIASES = {"flops": ("flops", COST.train_flops),
                "robust_acc": ("robust_acc", FINAL.robust_acc, "aa_robust_acc", "autoattack_acc"),
                "fid": ("fid", CONFIG_SYNTHETIC_FID, "synthetic_fid")}


def _runs(data: str | Path) -> Any:
    """A runs directory or table with the columns flops, robust_acc and (optional) fid."""
    import pandas as pd

    from robustperf.scaling.tables import load_table

    raw = load_table(data)
    if {"train_flops", "epochs", "aa_robust_acc", "eval_acc"} <= set(raw.columns):  # Debenedetti et al.: TFLOP/epoch
        from robustperf.report.tables import load_overlay

        return load_overlay(data)
    out = pd.DataFrame(index=raw.index)
    for name, aliases in _RUN_ALIASES.items():
        found = next((a for a in aliases if a in raw.columns), None)
        if found is not None:
            out[name] = pd.to_numeric(raw[found], errors="coerce")
    if "robust_acc" in out and out["robust_acc"].max() > 1.0:
        out["robust_acc"] = out["robust_acc"] / 100.0
    return out


def _law(spec: str) -> Any:
    from robustperf.scaling import create_law, load_fit

    path = Path(spec)
    if path.suffix == ".json" and path.exists():
        fit = load_fit(path)
        return fit.to_law()
    return create_law(spec)


def _accuracy_vs_flops(data: str | Path, *, law: str | None = None, human_level: float | None = papers.HUMAN_LEVEL,
                       k: float | None = None) -> Figure:
    return papers.accuracy_vs_flops_by_quality(_runs(data), None if law is None else _law(law),
                                               human_level=human_level, k=k)


def _overhead(data: str | Path, *, flops: float | None = None, fid: float = 0.0, k: float | None = None) -> Figure:
    if flops is None:
        raise ValueError("plot overhead needs --flops, the training budget whose optimum is the reference "
                         "(papers/001 Fig. 7 uses the prior SOTA's)")
    return papers.overhead_vs_model_size(_law(str(data)), flops, fid=fid, k=k)


def _predictor(data: str | Path, *, features: str | None = None, target: str | None = None, seed: int = 0) -> Figure:
    from robustperf.scaling import fit_robustness_predictor
    from robustperf.scaling.tables import load_table

    if not features or not target:
        raise ValueError("plot predictor needs --features (comma-separated columns) and --target (the column "
                         "to predict)")
    result = fit_robustness_predictor(load_table(data), [f.strip() for f in features.split(",")], target, seed=seed)
    return papers.predictor_figure(result, target=target)


def _llm(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    def build(data: str | Path) -> Figure:
        from robustperf.scaling.tables import load_table

        return fn(load_table(data))

    return build


_ZOO = "a RobustBench-style table (CSV/Parquet with year, parameters, FLOPs, accuracy)"
_ZOO_OPTS = ("dataset", "bootstrap", "seed")
for _metric, _name in (("n_params", "params-vs-year"), ("fwd_flops", "flops-vs-year"),
                       ("train_flops", "train-flops-vs-year")):
    PLOTS.register(_name, PlotKind(_metric_vs_year(_metric), _ZOO, (*_ZOO_OPTS, "eras"), "papers/004 XIV.A, C"))
PLOTS.register("accuracy-vs-year", PlotKind(_accuracy_vs_year, _ZOO,
                                            (*_ZOO_OPTS, "target_year", "ceiling", "select"), "papers/004 XIV.C.2"))
PLOTS.register("frontier", PlotKind(_frontier, _ZOO, (*_ZOO_OPTS, "quantile"),
                                    "papers/004 XIV.B (Thompson et al. quantile regression)"))
PLOTS.register("accuracy-vs-flops", PlotKind(_accuracy_vs_flops, "a runs directory or a table with flops, "
                                             "robust_acc and fid", ("law", "human_level", "k"), "papers/001 Fig. 1"))
PLOTS.register("overhead", PlotKind(_overhead, "a law: a published name or a fit JSON from `robustperf fit --out`",
                                    ("flops", "fid", "k"), "papers/001 Fig. 7, Eq. 6"))
PLOTS.register("predictor", PlotKind(_predictor, "a table with one row per run", ("features", "target", "seed"),
                                     "papers/002 Fig. 1b/1c"))
PLOTS.register("asr-vs-round", PlotKind(_llm(papers.asr_vs_round), "an LLM study CSV (<name>_asr_vs_round.csv or "
                                        "<name>_rounds.csv)", (), "papers/000 Figs. 2-4"))
PLOTS.register("asr-vs-size", PlotKind(_llm(papers.asr_vs_model_size), "an LLM study CSV (<name>_asr_vs_round.csv "
                                       "or <name>_rounds.csv)", (), "papers/000 Fig. 1"))
