"""The report's opening paragraph: what this study says, in plain words.

The fitted exponents, the compute-optimal split at the named budget, what the named target would cost,
and how sure we are (bootstrap intervals, fit status, the held-out extrapolation error). Every number
comes from the `Analysis`; a law that is missing or not ok is said to be so instead of quoted.
"""

from __future__ import annotations

import html
import math
from typing import Any

from robustperf.report.analysis import LARGE_ERROR, Analysis


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


def _budget_sentence(analysis: Analysis, forecast_spec: Any) -> str:
    budgets = [r for r in analysis.forecasts if r["target"].startswith("budget") and r.get("N") is not None]
    if forecast_spec is not None and forecast_spec.flops_budgets:
        named = f"budget {forecast_spec.flops_budgets[0]:.2g} FLOPs"
        budgets = [r for r in budgets if r["target"] == named] or budgets
    if not budgets:
        return ""
    r = budgets[0]
    text = (f"For the named {r['target'].replace('budget ', 'budget of ')}, the compute-optimal model has "
            f"N* = {_est(r['N'])} parameters trained on D* = {_est(r['D'])} samples")
    if r.get("accuracy") is not None:
        text += f", for a predicted robust accuracy of {_est(r['accuracy'], pct=True)}"
    text += "."
    if r.get("caveat"):
        text += f" ({r['caveat']}.)"
    return text


def _target_sentence(analysis: Analysis) -> str:
    targets = [r for r in analysis.forecasts if r["target"].startswith("robust acc")]
    if not targets:
        return ""
    surface_rows = [r for r in targets if "L(N, D)" in r["law"]]
    r = (surface_rows or targets)[0]
    goal = r["target"].replace("robust acc ", "robust accuracy ")
    if not r["reachable"]:
        return f"Reaching {goal} is not possible under this law ({r['message']})."
    text = f"Reaching {goal} would take {_est(r['flops'])} training FLOPs"
    costs = [(r.get("gpu_hours"), "H100 GPU-hours"), (r.get("energy_kwh"), "kWh"), (r.get("usd"), "USD of electricity")]
    parts = [f"{_est(c)} {unit}" for c, unit in costs if c is not None]
    if parts:
        text += " (" + ", ".join(parts) + ")"
    text += f" by the {r['law']}."
    return text


def _certainty_sentence(analysis: Analysis) -> str:
    if analysis.bootstrap > 0:
        text = f"Brackets are 95 % bootstrap intervals over {analysis.bootstrap} resamples of the runs."
    else:
        text = "No bootstrap was run (bootstrap 0), so there are no intervals and identifiability was not checked."
    check = analysis.extrapolation.get("surface") or analysis.extrapolation.get("envelope")
    if check is None:
        text += " There were too few runs to check extrapolation on held-out runs."
    else:
        verdict = (f"above the {LARGE_ERROR:.0%} tolerance, so treat the forecasts as unreliable" if check.large
                   else f"within the {LARGE_ERROR:.0%} tolerance")
        text += (f" Refitted on the runs below the top 20 % of compute, the {check.law} predicts the "
                 f"{len(check.rows)} held-out largest runs with a mean error of {check.mean_abs_error:.1%} "
                 f"({verdict}).")
    return text


def plain_summary(analysis: Analysis, forecast_spec: Any = None, *, markup: bool = True) -> str:
    """One paragraph in plain words (HTML-escaped when ``markup``)."""
    parts = [_surface_sentence(analysis), _budget_sentence(analysis, forecast_spec), _target_sentence(analysis),
             _certainty_sentence(analysis)]
    text = " ".join(p for p in parts if p)
    return html.escape(text) if markup else text
