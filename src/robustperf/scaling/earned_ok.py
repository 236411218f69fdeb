"""An L(N, D) fit earns `ok` only after three checks on the data it was actually fitted on (issue 27).

Checked from outside with planted laws, Approach 2 on an N axis spanning under 1.5x came back `ok` in 65
of 144 fits, with E collapsed to 2.8e-10 (truth 0.48); without a bootstrap a fit on D spanning 1.3x was
`ok` with nothing checked. So, before `ok` stands:

1. every fitted axis has at least 3 distinct values spanning more than ``MIN_SPAN`` (the design rule of
   `robustperf study --check-design`, applied to the fitted runs instead of the planned grid);
2. no parameter sits at a bound of its domain - the floor E or a term (A/N^alpha, B/D^beta at the runs'
   centre) collapsed to 0, an exponent at 0 or at the largest plausible one - nor, with a bootstrap, has
   its interval against one;
3. identification was checked: by the bootstrap when there is one (`robustperf.scaling.identify`), else
   by the local curvature of the least-squares objective (Gauss-Newton covariance of the log-loss
   residuals, the quadratic approximation of the profile likelihood) judged by the same interval rules.

A fit failing any check becomes `poorly_identified` with the reason; it stays usable, labelled.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from robustperf.scaling.fit_metrics import EarnedOk, Identifiability
from robustperf.scaling.identify import _judge
from robustperf.scaling.result import FitResult, FitStatus

MIN_VALUES = 3
MIN_SPAN = 1.5  # an axis spanning 1.5x or less does not identify its exponent (sweep/design.py's rule)
AT_BOUND = 1e-6  # a term below this share of the median loss has collapsed onto its bound 0
MAX_EXPONENT = 3.0  # fit.py's MAX_PLAUSIBLE_EXPONENT
Z95 = 1.959963984540054
_AXES = (("N", "alpha", "A"), ("D", "beta", "B"))


def axis_reasons(N: np.ndarray, D: np.ndarray) -> dict[str, str]:  # noqa: N803
    """Exponent -> why its axis cannot identify it (too few values, or a span of at most MIN_SPAN)."""
    out = {}
    for (axis, exponent, _), values in zip(_AXES, (N, D), strict=True):
        distinct = np.unique(values[values > 0])
        span = float(distinct.max() / distinct.min()) if distinct.size else 1.0
        if distinct.size < MIN_VALUES:
            out[exponent] = f"{axis} takes {distinct.size} distinct value(s) (needs {MIN_VALUES})"
        elif span <= MIN_SPAN:
            out[exponent] = f"{axis} spans {span:.3g}x in the fitted runs (needs more than {MIN_SPAN:g}x)"
    return out


def _terms(params: dict[str, float], log_nc: float, log_dc: float) -> dict[str, float]:
    return {"A": params["A"] * math.exp(-params["alpha"] * log_nc), "B": params["B"] * math.exp(-params["beta"] * log_dc),
            "E": params["E"]}


def bound_reasons(fit: FitResult, median_loss: float, log_nc: float, log_dc: float) -> dict[str, str]:
    """Parameter -> why it sits at (or, by its bootstrap interval, against) a bound of its domain."""
    p = fit.params
    out = {}
    floor = AT_BOUND * median_loss
    for name, value in _terms(p, log_nc, log_dc).items():
        where = "the loss floor" if name == "E" else "its term at the runs' centre"
        if not value > floor:
            out[name] = f"{name}: {where} is {value:.3g}, at its bound 0"
        elif name == "E" and fit.bootstrap is not None and "E" in fit.bootstrap.samples:
            samples = fit.bootstrap.samples["E"]
            share = float(np.mean(~(samples > floor))) if samples.size else 0.0
            if share >= 0.025:  # the 95 % interval's lower tail sits on the bound
                out[name] = f"E: its 95 % interval reaches its bound 0 ({share:.0%} of the resamples sit there)"
    for exponent in ("alpha", "beta"):
        value = p[exponent]
        if not 1e-6 < value < MAX_EXPONENT:
            out[exponent] = f"{exponent} = {value:.3g} is at a bound of (0, {MAX_EXPONENT:g})"
    return out


def curvature_reasons(params: dict[str, float], N: np.ndarray, D: np.ndarray, L: np.ndarray,  # noqa: N803
                      log_nc: float, log_dc: float) -> dict[str, str]:
    """Parameter -> why the objective's local curvature does not pin it (Wald 95 % interval rules)."""
    theta = np.array([math.log(max(params["A"], 1e-300)), params["alpha"], math.log(max(params["B"], 1e-300)),
                      params["beta"], math.log(max(params["E"], 1e-300))])

    def predict(t: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.log(np.exp(t[0]) * N ** -t[1] + np.exp(t[2]) * D ** -t[3] + np.exp(t[4]))

    resid = np.log(L) - predict(theta)
    n, k = L.size, theta.size
    if n <= k:
        return {name: f"{n} runs for {k} parameters: no curvature to judge" for name in ("alpha", "beta", "E")}
    jac = np.empty((n, k))
    for j in range(k):
        h = 1e-5 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        jac[:, j] = (predict(up) - predict(down)) / (2 * h)
    s2 = float(resid @ resid) / (n - k)
    s2 = max(s2, 1e-12)  # an exact fit still has a float-level scale
    cov = s2 * np.linalg.pinv(jac.T @ jac, rcond=1e-14)
    if not np.all(np.isfinite(cov)):
        return {"alpha": "the objective's curvature matrix is singular", "beta": "same"}
    out = {}
    for exponent, i in (("alpha", 1), ("beta", 3)):
        sd = math.sqrt(max(cov[i, i], 0.0))
        why = _judge(exponent, params[exponent], params[exponent] - Z95 * sd, params[exponent] + Z95 * sd, 0.95)
        if why:
            out[exponent] = why + " (local curvature)"
    # coefficients judged in log space; A and B as their terms at the runs' centre, as the bootstrap does
    for name, idx, log_c in (("A", (0, 1), log_nc), ("B", (2, 3), log_dc), ("E", (4, None), 0.0)):
        g = np.zeros(k)
        g[idx[0]] = 1.0
        if idx[1] is not None:
            g[idx[1]] = -log_c
        sd_log10 = math.sqrt(max(float(g @ cov @ g), 0.0)) / math.log(10.0)
        if 2 * Z95 * sd_log10 > 2.0:
            out[name] = (f"{name}: its local 95 % interval spans {2 * Z95 * sd_log10:.1f} orders of magnitude "
                         "(> 2; local curvature)")
    return out


def earn_ok(fit: FitResult, N: Any, D: Any, L: Any) -> FitResult:  # noqa: N803
    """``fit`` (A, B, E, alpha, beta) kept `ok` only if the three checks pass on its fitted rows N, D, L."""
    if fit.status not in (FitStatus.OK, FitStatus.POORLY_IDENTIFIED) or not {"A", "B", "E", "alpha", "beta"} <= set(
            fit.params):
        return fit
    n, d, loss = (np.asarray(a, dtype=float).ravel() for a in (N, D, L))
    keep = np.isfinite(n) & np.isfinite(d) & np.isfinite(loss) & (n > 0) & (d > 0) & (loss > 0)
    n, d, loss = n[keep], d[keep], loss[keep]
    log_nc, log_dc = float(np.mean(np.log(n))), float(np.mean(np.log(d)))
    reasons = {**axis_reasons(n, d)}
    for name, why in bound_reasons(fit, float(np.median(loss)), log_nc, log_dc).items():
        reasons.setdefault(name, why)
    checked_by = "bootstrap"
    if fit.bootstrap is None:
        checked_by = "local curvature (no bootstrap)"
        for name, why in curvature_reasons(fit.params, n, d, loss, log_nc, log_dc).items():
            reasons.setdefault(name, why)
    info = EarnedOk(checked_by, {"N": float(n.max() / n.min()), "D": float(d.max() / d.min())}, dict(reasons))
    metrics = fit.metrics.with_(earned_ok=info)
    if not reasons:
        return replace(fit, metrics=metrics)
    old = fit.metrics.identifiability or Identifiability(checked=False)
    known = old.problems
    identifiability = replace(old, poorly_identified=tuple(sorted(set(old.names) | set(reasons))),
                              reasons=(*known, *(r for r in reasons.values() if r not in known)))
    message = f"{fit.message}; not ok: {'; '.join(reasons.values())}"
    return replace(fit, status=FitStatus.POORLY_IDENTIFIED, message=message,
                   metrics=metrics.with_(identifiability=identifiability))
