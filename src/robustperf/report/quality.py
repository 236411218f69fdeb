"""The data-quality axis of a study (papers/001 Sec. 3.2.2-3.2.3, App. F.2-F.3): FID-aware laws and the FID-0 ceiling.

Each run's FID is the one measured for its synthetic set (``meta.json`` written by `robustperf data generate`
or `data import`), never a typed tag: a config's ``data.synthetic_fid`` is used only where the set has no
measured value, and then the note says so. All runs must share one FID extractor. On (N, D, FID, adversarial
loss) it fits Approach 2 (the paper's two stages: the base data set, then eps and zeta; and, as a check,
all seven parameters on every run at once) and Approach 3, maps loss to robust accuracy with the runs' own
line (App. F.2.2), and predicts the ceiling: the loss and accuracy as N, D -> infinity at FID 0 and at each
level's FID, with bootstrap intervals.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustperf.store import schema
from robustperf.store.schema import COST, FINAL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityAnalysis:
    """The FID-aware fits of one study.

    Attributes:
        frame: one row per finished run: run_id, n_params, samples_seen, flops, adv_loss, robust_acc, fid,
            extractor, synthetic_path.
        approach2, approach3: FitResults (status as the fit reports it), or None with the reason in notes.
            approach2 is papers/001's two stages (the base data set, then eps and zeta on the others).
        loss_to_accuracy: FitResult of accuracy = slope * loss + intercept on these runs, or None.
        ceilings: one dict per (law, FID): ceiling loss and accuracy with intervals.
        metric: what the laws were fitted on: "adv_loss" (the papers' CE + 5 KL), "adv_ce" or "robust_error".
        extractor: the FID extractor every run's FID came from.
        notes: why something was skipped, and where an FID was not measured.
        approach2_joint: Approach 2 with all seven parameters fitted on every run at once, reported beside
            the paper's two stages (whose first stage sees the base data set only).
    """

    frame: Any
    approach2: Any = None
    approach3: Any = None
    loss_to_accuracy: Any = None
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    extractor: str | None = None
    notes: list[str] = field(default_factory=list)
    metric: str = "adv_loss"
    approach2_joint: Any = None

    def fits(self) -> dict[str, Any]:
        """Label -> FitResult of every law fitted (labels name the ceilings' ``law``)."""
        named = {"approach2": self.approach2, "approach2_joint": self.approach2_joint, "approach3": self.approach3}
        return {k: v for k, v in named.items() if v is not None}


def _measured_fid(row: dict[str, Any], notes: list[str]) -> tuple[float, str | None]:
    """(FID, extractor) of a run's training data: the synthetic set's measured FID, 0 for real data only."""
    path = row.get(schema.CONFIG_SYNTHETIC_PATH)
    frac = row.get(schema.CONFIG_SYNTHETIC_FRACTION) or 0.0
    if not path or float(frac) <= 0:
        return 0.0, None
    meta_path = Path(str(path)).expanduser() / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("fid") is not None and meta.get("fid_extractor"):
        return float(meta["fid"]), str(meta["fid_extractor"])
    typed = row.get(schema.CONFIG_SYNTHETIC_FID)
    if typed is None or (isinstance(typed, float) and np.isnan(typed)):
        raise ValueError(f"run {row.get('run_id')}: synthetic set {path} has no measured FID; measure it with "
                         f"`robustperf data fid {path} --ref <dataset> --write-meta`")
    notes.append(f"run {row.get('run_id')}: FID {typed} is a typed tag, not measured")
    return float(typed), None


def quality_frame(rows: list[dict[str, Any]], *, evaluation_key: str | None = None) -> tuple[Any, list[str]]:
    """Finished runs with their measured FID; robust accuracy from the study's evaluation when present."""
    import pandas as pd

    notes: list[str] = []
    out = []
    for row in rows:
        if row.get(schema.STATUS) != "finished":
            continue
        fid, extractor = _measured_fid(row, notes)
        key = schema.evaluation_column(evaluation_key, "robust_acc") if evaluation_key else None
        robust = row.get(key) if key and row.get(key) is not None else row.get(FINAL.robust_acc)
        out.append({"run_id": row.get(schema.RUN_ID), "n_params": row.get(FINAL.n_params),
                    "samples_seen": row.get(FINAL.samples_seen), "flops": row.get(COST.train_flops),
                    "adv_loss": row.get(FINAL.adv_loss), "adv_ce": row.get(FINAL.adv_ce), "robust_acc": robust,
                    "clean_acc": row.get(FINAL.clean_acc), "fid": fid, "extractor": extractor,
                    "synthetic_path": row.get(schema.CONFIG_SYNTHETIC_PATH)})
    frame = pd.DataFrame(out)
    for col in ("n_params", "samples_seen", "flops", "adv_loss", "adv_ce", "robust_acc", "clean_acc", "fid"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame, notes


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


METRICS = ("adv_loss", "adv_ce", "robust_error")


def analyze_quality(rows: list[dict[str, Any]], *, evaluation_key: str | None = None, bootstrap: int = 200,
                    seed: int = 0, metric: str = "adv_loss") -> QualityAnalysis:
    """Fit Approach 2 and 3 with the FID terms and predict the ceilings (see the module docstring).

    ``metric="robust_error"`` fits the laws on 1 - robust accuracy instead of the papers' adversarial loss;
    on tiny, briefly trained models the CE + 5 KL loss can fall as the models get *worse* (less confident
    predictions shrink the KL term), which the error cannot. The ceiling accuracy is then 1 - the ceiling.
    ``metric="adv_ce"`` fits the cross-entropy at the PGD points (the PGD-AT objective; continuous like the
    papers' loss, and without the KL term's inversion), mapped to accuracy by the runs' own line.

    Raises:
        ValueError: runs whose FIDs come from different extractors, or a synthetic set with no FID at all.
    """
    from robustperf.scaling import fit_approach2, fit_approach3, fit_loss_to_accuracy
    from robustperf.scaling.forecasting import ceiling_loss, estimate_derived

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    frame, notes = quality_frame(rows, evaluation_key=evaluation_key)
    if frame.empty:
        return QualityAnalysis(frame, notes=[*notes, "no finished runs"])
    extractors = sorted({e for e in frame["extractor"].dropna()})
    if len(extractors) > 1:
        raise ValueError(f"the runs' FIDs come from different extractors {extractors}; FIDs from different "
                         f"extractors are different quantities: remeasure every set with one extractor")
    extractor = extractors[0] if extractors else None
    frame["robust_error"] = 1.0 - frame["robust_acc"]
    need = frame.dropna(subset=["n_params", "samples_seen", metric])
    N, D, L, F = (need[c].to_numpy(float) for c in ("n_params", "samples_seen", metric, "fid"))
    a2 = _quiet(fit_approach2, N, D, L, F, bootstrap=bootstrap, seed=seed)
    a2j = _quiet(fit_approach2, N, D, L, F, joint=True, bootstrap=bootstrap, seed=seed)
    a3 = _quiet(fit_approach3, N, D, L, F, bootstrap=bootstrap, seed=seed)
    fits = {"approach2": a2, "approach2_joint": a2j, "approach3": a3}
    for label, res in fits.items():
        if not res.ok:
            notes.append(f"{label}: status {res.status} ({res.message})")
    l2a = None
    acc = need.dropna(subset=["robust_acc", metric])
    if metric == "robust_error":
        pass  # accuracy = 1 - L: no regression needed
    elif len(acc) >= 3:
        l2a = _quiet(fit_loss_to_accuracy, acc[metric].to_numpy(float), acc["robust_acc"].to_numpy(float),
                     bootstrap=bootstrap, seed=seed)
    else:
        notes.append("loss -> accuracy: fewer than 3 runs with robust accuracy")
    ceilings = []
    levels = sorted({0.0, *(float(f) for f in np.unique(F))})
    for label, res in fits.items():
        if not res.params:
            continue
        for fid in levels:
            loss = estimate_derived(res, lambda law, f=fid: ceiling_loss(law, fid=f))
            entry: dict[str, Any] = {"law": label, "status": str(res.status), "fid": fid, "loss": loss.to_dict()}
            if l2a is not None or metric == "robust_error":  # the loss interval mapped to accuracy (the line's
                # own error not included)
                slope, intercept = (-1.0, 1.0) if l2a is None else (l2a.params["slope"], l2a.params["intercept"])
                ends = [slope * v + intercept for v in (loss.low, loss.high) if v is not None]
                entry["accuracy"] = {"value": slope * loss.value + intercept,
                                     "low": min(ends) if ends else None, "high": max(ends) if ends else None}
            ceilings.append(entry)
    impossible = sorted({(c["law"], c["fid"]) for c in ceilings
                         if c["loss"]["value"] < 0 or not 0.0 <= c.get("accuracy", {}).get("value", 0.5) <= 1.0})
    for law_name in sorted({name for name, _ in impossible}):
        notes.append(f"{law_name}: the predicted ceiling lies outside [0, 1] accuracy (or below 0 loss) at FID "
                     f"{', '.join(f'{f:g}' for name, f in impossible if name == law_name)}: the fit is not physically "
                     f"meaningful whatever its status says; do not use its ceilings")
    return QualityAnalysis(need.reset_index(drop=True), a2, a3, l2a, ceilings, extractor, notes, metric,
                           approach2_joint=a2j)


def accuracy_vs_flops(analysis: QualityAnalysis, *, human_accuracy: float | None = None,
                      human_label: str | None = None) -> Any:
    """Robust accuracy vs training FLOPs, one colour per FID level, ceilings dashed (papers/001 Fig. 1).

    ``human_accuracy`` draws the human-level line (``human_label`` names where it came from, e.g. a scored
    human study: `robustperf.human.report.human_level`).

    Ceilings are drawn only from an Approach 2 fit whose status is ok and whose ceilings lie in [0, 1] (the
    paper's two stages first, else the joint fit, named in the legend); otherwise the legend says why they
    are left out. With no run to draw the figure is marked empty (the report then omits it with that reason).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    frame = analysis.frame.dropna(subset=["flops", "robust_acc"]) if not analysis.frame.empty else analysis.frame
    if frame.empty:
        ax.text(0.5, 0.5, "no finished runs with FLOPs and robust accuracy", ha="center", va="center",
                transform=ax.transAxes)
        fig.robustperf_empty = "no finished runs with FLOPs and robust accuracy"  # type: ignore[attr-defined]
        return fig
    why_not = ceiling_withheld(analysis)
    law = ceiling_law(analysis)
    cmap = plt.get_cmap("viridis")
    fids = sorted(frame["fid"].unique())
    for i, fid in enumerate(fids):
        sub = frame[frame["fid"] == fid].sort_values("flops")
        colour = cmap(i / max(1, len(fids) - 1))
        ax.scatter(sub["flops"], sub["robust_acc"], color=colour, s=18, label=f"FID {fid:.3g}")
        best = sub.groupby("flops")["robust_acc"].max()
        ax.plot(best.index, np.maximum.accumulate(best.to_numpy()), color=colour, lw=1)
        ceiling = None if law is None else _ceiling(analysis, law, fid)
        if ceiling is not None:
            ax.axhline(ceiling, color=colour, ls="--", lw=0.8)
    zero = None if law is None else _ceiling(analysis, law, 0.0)
    if zero is not None and law is not None:
        ax.axhline(zero, color="black", ls="--", lw=1, label=f"FID-0 ceiling ({LAW_NAMES[law]}) {zero:.3f}")
    else:
        ax.plot([], [], " ", label=f"ceilings not drawn: {why_not}")
    if human_accuracy is not None:
        ax.axhline(human_accuracy, color="tab:red", ls=":", lw=1.2,
                   label=human_label or f"human level {human_accuracy:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("robust accuracy")
    extractor = f" (FID: {analysis.extractor})" if analysis.extractor else ""
    ax.set_title("robust accuracy vs compute per data quality" + extractor, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


LAW_NAMES = {"approach2": "Approach 2", "approach2_joint": "Approach 2, joint fit", "approach3": "Approach 3"}


def _withheld(analysis: QualityAnalysis, label: str) -> str | None:
    """Why the ceilings of one Approach 2 fit must not be drawn (None: they may)."""
    fit = analysis.fits().get(label)
    if fit is None:
        return f"no {LAW_NAMES[label]}"
    if not fit.ok:
        return f"{LAW_NAMES[label]} is {fit.status}"
    values = [c.get("accuracy", {}).get("value") for c in analysis.ceilings if c["law"] == label]
    if not values or any(v is None or not 0.0 <= v <= 1.0 for v in values):
        return f"{LAW_NAMES[label]}'s ceilings fall outside [0, 1]"
    return None


def ceiling_law(analysis: QualityAnalysis) -> str | None:
    """The fit whose ceilings are drawn: the paper's two-stage Approach 2 when it is sound, else the joint fit."""
    return next((label for label in ("approach2", "approach2_joint") if _withheld(analysis, label) is None), None)


def ceiling_withheld(analysis: QualityAnalysis) -> str | None:
    """Why no Approach 2 ceiling may be drawn (None: one may, see `ceiling_law`)."""
    if ceiling_law(analysis) is not None:
        return None
    return "; ".join(r for r in (_withheld(analysis, label) for label in ("approach2", "approach2_joint")) if r)


def quality_rows(rows: list[dict[str, Any]]) -> bool:
    """Whether these index rows hold a quality study: synthetic sets at two or more FIDs."""
    fids = {row.get(schema.CONFIG_SYNTHETIC_FID) for row in rows if row.get(schema.CONFIG_SYNTHETIC_PATH)}
    paths = {row.get(schema.CONFIG_SYNTHETIC_PATH) for row in rows if row.get(schema.CONFIG_SYNTHETIC_PATH)}
    return len(paths) >= 2 or len(fids - {None}) >= 2


def report_figure(rows: list[dict[str, Any]], *, evaluation_key: str | None, metrics: tuple[str, ...],
                  bootstrap: int, human: Any = None) -> tuple[str, Any] | None:
    """The study report's data-quality figure (caption, figure), or None when the runs hold no quality axis.

    The laws are fitted on the first loss among ``metrics`` (``adv_loss`` or ``adv_ce``), else on robust
    error. ``human`` (a `robustperf.human.report.HumanLevel`) adds its human-level line.
    """
    if not quality_rows(rows):
        return None
    metric = next((m for m in metrics if m in ("adv_loss", "adv_ce")), "robust_error")
    try:
        analysis = analyze_quality(rows, evaluation_key=evaluation_key, bootstrap=bootstrap, metric=metric)
    except ValueError as exc:  # e.g. FIDs from two extractors: say so instead of drawing
        fig = accuracy_vs_flops(QualityAnalysis(_empty_frame()))
        fig.robustperf_empty = str(exc)  # type: ignore[attr-defined]
        return "Data quality", fig
    statuses = ", ".join(f"{LAW_NAMES[label]} {f.status}" for label, f in analysis.fits().items())
    law = ceiling_law(analysis)
    caption = (f"Robust accuracy vs training FLOPs per synthetic-data quality (measured FID, extractor "
               f"{analysis.extractor or 'unknown'}), papers/001 Fig. 1. FID-aware laws fitted on {metric}: "
               f"{statuses or 'not fitted'}. Ceilings dashed only from an ok Approach 2"
               + (f" (drawn: {LAW_NAMES[law]})." if law else f" (withheld: {ceiling_withheld(analysis)}).")
               + (f" Dotted: {human.label}, papers/001 Table 4's model + average human." if human is not None else ""))
    return caption, accuracy_vs_flops(analysis, human_accuracy=None if human is None else human.value,
                                      human_label=None if human is None else human.label)


def _empty_frame() -> Any:
    import pandas as pd

    return pd.DataFrame(columns=["flops", "robust_acc", "fid"])


def _ceiling(analysis: QualityAnalysis, law: str, fid: float) -> float | None:
    for c in analysis.ceilings:
        if c["law"] == law and np.isclose(c["fid"], fid) and "accuracy" in c:
            return float(c["accuracy"]["value"])
    return None


def _estimate(fit: Any, name: str) -> str:
    try:
        return str(fit.estimate(name))
    except (KeyError, ValueError):
        return "-"


def results_markdown(analysis: QualityAnalysis, *, title: str, header_lines: list[str]) -> str:
    """The results file: runs per level, fitted parameters with 95 % intervals, ceilings, notes."""
    lines = [f"# {title}", "", *header_lines, ""]
    f = analysis.frame
    lines += [f"FID extractor: {analysis.extractor}; laws fitted on: {analysis.metric}", "",
              f"| FID | runs | best robust acc | best {analysis.metric} |", "|---|---|---|---|"]
    for fid, sub in f.groupby("fid"):
        lines.append(f"| {fid:.3f} | {len(sub)} | {sub['robust_acc'].max():.4f} | {sub[analysis.metric].min():.4f} |")
    for label, fit in analysis.fits().items():
        lines += ["", f"## {label}: status {fit.status}", "", HEADINGS[label], "",
                  f"{fit.n_points} runs, objective {fit.objective:.4g}, R^2 (log) {_or_nan(fit.metrics.r2_log):.3f}"
                  + (f"; {fit.message}" if fit.message else ""), "", "| parameter | value [95 % bootstrap interval] |",
                  "|---|---|"]
        lines += [f"| {name} | {_estimate(fit, name)} |" for name in fit.params]
        given = fit.metrics.stage2_given_stage1
        if given:  # where the FID terms' width comes from
            lines += ["", "FID terms with stage 1 held at its fit (only the other data sets resampled): "
                      + ", ".join(f"{k} [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in given.items())
                      + ". The full intervals above also refit stage 1."]
    if analysis.loss_to_accuracy is not None:
        p = analysis.loss_to_accuracy.params
        lines += ["", f"loss -> robust accuracy on these runs: accuracy = {p['slope']:.4f} L + {p['intercept']:.4f} "
                      f"(R^2 {_or_nan(analysis.loss_to_accuracy.metrics.r2):.3f})"]
    lines += ["", "## Ceilings (N, D -> infinity)", "", "| law | status | FID | loss | robust accuracy |",
              "|---|---|---|---|---|"]
    for c in analysis.ceilings:
        acc = c.get("accuracy")
        acc_s = "-" if acc is None else _interval(acc)
        lines.append(f"| {c['law']} | {c['status']} | {c['fid']:.3f} | {_interval(c['loss'])} | {acc_s} |")
    if analysis.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in analysis.notes]]
    return "\n".join(lines) + "\n"


HEADINGS = {
    "approach2": "papers/001's two stages: A, B, E, alpha, beta on the base data set (the FID with the most runs), "
                 "then eps and zeta on the others with those held.",
    "approach2_joint": "The same law with all seven parameters fitted on every run at once (a check on the two "
                       "stages, whose first stage sees the base data set only).",
    "approach3": "papers/001 Eq. 5 on every run at once (App. F.3.1's start grid, no log re-parameterisation).",
}


def _interval(e: dict[str, Any]) -> str:
    if e.get("low") is None or e.get("high") is None:
        return f"{e['value']:.4g}"
    return f"{e['value']:.4g} [{e['low']:.4g}, {e['high']:.4g}]"


def _or_nan(value: float | None) -> float:
    """A metric a fit did not record, as nan (printed "nan" like before)."""
    return float("nan") if value is None else value
