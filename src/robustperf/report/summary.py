"""The report's opening paragraph: what this study says, in short sentences a person reads first.

In order (issue 27): what was measured (the best and the largest run, with the attack set and checkpoint
the robust accuracy comes from), what the fit says (exponents with intervals), the backtest of the whole
pipeline in accuracy, and only then the forecast at the named budget - with its caveat (extrapolation,
failed backtest, unidentified fit) in the same sentence as the number. Every number comes from the
`Analysis`; a law that is missing or not ok is said to be so instead of quoted.
"""

from __future__ import annotations

import html
import math
from typing import Any

from robustperf.report.analysis import Analysis
from robustperf.store.schema import split_evaluation_column


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "infinite"
    return f"{value:.3g}"


def _est(e: tuple[float, float | None, float | None] | None, pct: bool = False) -> str:
    """'0.42 [0.38, 0.47]' from a forecast row's (value, low, high)."""
    if e is None:
        return "n/a"
    value, lo, hi = e

    def f(x: float | None) -> str:
        return f"{x:.1%}" if pct and x is not None and math.isfinite(x) else _num(x)

    if lo is None or hi is None:
        return f(value)
    # a resample that never reaches the target has infinite FLOPs: the interval is open above
    upper = "unbounded" if (isinstance(hi, float) and (math.isnan(hi) or math.isinf(hi))) else f(hi)
    return f"{f(value)} [{f(lo)}, {upper}]"


def _param(fit: Any, name: str) -> str:
    e = fit.estimate(name)
    return _num(e.value) if e.low is None else f"{_num(e.value)} [{_num(e.low)}, {_num(e.high)}]"


def _surface_sentence(analysis: Analysis) -> str:
    s = analysis.surface
    if s is None:
        why = next((n for n in analysis.notes if n.startswith("L(N, D) law")), "it was not requested")
        return f"No law of adversarial loss in model size and data was fitted ({why})."
    if not s.usable:
        return (f"The law of adversarial loss in model size N and training samples D could not be used: the fit is "
                f"{s.status.value}, so no compute-optimal split is derived from it.")
    sentence = (f"Adversarial loss falls with model size as N^-alpha with alpha = {_param(s, 'alpha')} and with "
                f"training samples as D^-beta with beta = {_param(s, 'beta')}, towards a floor E = {_param(s, 'E')} "
                f"({s.law} fit on {s.n_points} runs).")
    law = s.to_law()
    if law.alpha > 0 and law.beta > 0:
        a = law.beta / (law.alpha + law.beta)
        sentence += (f" Spending more compute optimally, the model should grow as C^{a:.2f} and the data as "
                     f"C^{1 - a:.2f}.")
    if not s.ok:
        sentence += f" Caveat: {s.caveat()}."
    return sentence


def _measured_sentence(analysis: Analysis) -> str:
    """The best and the largest finished run, with where their robust accuracy comes from."""
    done = analysis.finished
    done = done[done["robust_acc"].notna() & (done["flops"] > 0)] if "flops" in done else done.iloc[0:0]
    if done.empty:
        return "No finished run has a robust accuracy yet."
    best = done.loc[done["robust_acc"].idxmax()]
    largest = done.loc[done["flops"].idxmax()]
    labels = done["robust_label"].mode() if "robust_label" in done else None
    source = labels.iloc[0] if labels is not None and not labels.empty else robust_source_text(analysis.robust_source)
    text = (f"{len(done)} runs were measured (robust accuracy: {source}). The best reached "
            f"{best['robust_acc']:.1%} robust accuracy at {best['flops']:.3g} training FLOPs.")
    if largest["run_id"] != best["run_id"]:
        text += f" The largest, at {largest['flops']:.3g} FLOPs, reached {largest['robust_acc']:.1%}."
    return text


def robust_source_text(source: str) -> str:
    """'worst case per example over apgd-ce+apgd-t on the best checkpoint, 360 test points' from a source key."""
    evaluation = split_evaluation_column(source)
    if evaluation is not None and evaluation[0].startswith("study_"):
        key = evaluation[0].removeprefix("study_")
        which, _, rest = key.partition("_")
        attacks, _, n = rest.rpartition("_")
        names = attacks.split("+")
        over = f"worst case per example over {' + '.join(names)}" if len(names) > 1 else f"robust accuracy under {names[0]}"
        return f"{over} on the {which} checkpoint, {n} test points"
    return "robust accuracy from the training engine's last-epoch evaluation"


def _backtest_sentence(analysis: Analysis) -> str:
    bt = analysis.backtest
    if bt is None:
        why = next((n for n in analysis.notes if n.startswith("backtest")), "no L(N, D) law was fitted")
        return f"The forecasting pipeline could not be backtested ({why})."
    return bt.verdict()


def _budget_sentence(analysis: Analysis, forecast_spec: Any) -> str:
    budgets = [r for r in analysis.forecasts if r["target"].startswith("budget") and r.get("accuracy") is not None]
    if forecast_spec is not None and forecast_spec.flops_budgets:
        named = f"budget {forecast_spec.flops_budgets[0]:.2g} FLOPs"
        budgets = [r for r in budgets if r["target"] == named] or budgets
    if not budgets:
        return ""
    # the headline is a forecast whose checks passed; a failed one is named, not quoted as the headline
    trusted = [b for b in budgets if b.get("backtest_passed") is not False and not b.get("held_out_large")]
    r = (trusted or budgets)[0]
    failed = [b for b in budgets if b is not r and b["target"] == r["target"]
              and (b.get("backtest_passed") is False or b.get("held_out_large"))]
    where = r["target"].replace("budget ", "")
    caveats = []
    if r.get("extrapolation"):
        what = ("the losses the accuracy map was fitted on" if "L(N, D)" in r["law"] else
                "the compute of the largest run")
        caveats.append(f"an extrapolation beyond {what}")
    if r.get("backtest_passed") is False:
        caveats.append("not reliable, since the backtest failed")
    if r.get("caveat"):
        caveats.append(r["caveat"])
    if r.get("held_out_large"):
        caveats.append("the law's held-out error is large")
    if r.get("N") is not None:
        text = (f"At the named budget of {where}, the compute-optimal model has N* = {_est(r['N'])} parameters and "
                f"D* = {_est(r['D'])} samples")
        if r.get("accuracy") is not None:
            text += f"; it is forecast to reach {_est(r['accuracy'], pct=True)} robust accuracy"
    else:
        text = (f"At the named budget of {where}, the {r['law']} forecasts {_est(r['accuracy'], pct=True)} robust "
                "accuracy")
    text += f" ({'; '.join(caveats)})." if caveats else " (within the fitted range)."
    for b in failed:
        acc = f" ({_est(b['accuracy'], pct=True)})" if b.get("accuracy") is not None else ""
        text += f" The {b['law']} forecast{acc} is not the headline: its backtest failed."
    return text


def _target_sentence(analysis: Analysis) -> str:
    targets = [r for r in analysis.forecasts if r["target"].startswith("robust acc")]
    if not targets:
        return ""
    trusted = [r for r in targets if r.get("backtest_passed") is not False and not r.get("held_out_large")]
    surface_rows = [r for r in targets if "L(N, D)" in r["law"]]
    r = (trusted or surface_rows or targets)[0]
    goal = r["target"].replace("robust acc ", "robust accuracy ")
    caveat = f"; {r['caveat']}" if r.get("caveat") else ""
    if not r["reachable"]:
        return f"Reaching {goal} is not possible under the {r['law']} ({r['message']}{caveat})."
    text = f"Reaching {goal} would take {_est(r['flops'])} training FLOPs"
    from robustperf.cost.constants import MFU_DEFAULT

    costs = [(r.get("gpu_hours"), f"H100 GPU-hours at MFU {MFU_DEFAULT.value:g}"), (r.get("energy_kwh"), "kWh"),
             (r.get("usd"), "USD of electricity")]
    parts = [f"{_est(c)} {unit}" for c, unit in costs if c is not None]
    if parts:
        text += " (" + ", ".join(parts) + ")"
    text += f" by the {r['law']}"
    if r.get("backtest_passed") is False:
        text += ", which failed its backtest"
    elif r.get("held_out_large"):
        text += ", whose held-out error is large (unreliable)"
    if caveat:
        text += f" ({r['caveat']})"
    return text + "."


def _certainty_sentence(analysis: Analysis) -> str:
    if analysis.bootstrap > 0:
        text = f"Brackets are 95 % bootstrap intervals over {analysis.bootstrap} resamples of the runs."
    else:
        text = "No bootstrap was run (bootstrap 0), so there are no intervals and identifiability was not checked."
    bt = analysis.backtest
    if bt is not None and math.isfinite(bt.conformal_logit):
        text += (f" Forecast accuracy intervals are widened by the backtest's largest held-out error "
                 f"(split-conformal, {bt.conformal_level:.0%} coverage with {len(bt.rows) - 1} held-out runs).")
    return text


def plain_summary(analysis: Analysis, forecast_spec: Any = None, *, markup: bool = True) -> str:
    """Plain words in reading order: one ``<p>`` per part (HTML-escaped) when ``markup``, else one paragraph."""
    parts = [_measured_sentence(analysis), _surface_sentence(analysis), _backtest_sentence(analysis),
             _budget_sentence(analysis, forecast_spec), _target_sentence(analysis), _certainty_sentence(analysis)]
    parts = [p for p in parts if p]
    return "".join(f"<p>{html.escape(p)}</p>" for p in parts) if markup else " ".join(parts)
