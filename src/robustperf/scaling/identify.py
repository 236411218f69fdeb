"""Identifiability from the data: is each fitted parameter pinned down by the runs it was fitted on?

A converged optimiser is not enough. On a grid whose D axis spans 1.3x, a Chinchilla fit converges
to beta = 1.02 (0.42 planted) with B anywhere in [83, 4e140]: the loss changes too little along D to tell
B, beta and E apart. A fixed rule ("the term changes by < 2 % of the loss") misses this; the bootstrap
does not: refitting resamples of the runs gives each parameter's spread, and a parameter the data do not
constrain wanders. The rules (issue 11):

- an exponent (alpha, beta, kappa, a, b, ...) whose 95 % interval is wider than its own value;
- a positive coefficient (A, B, E, C, Q, ...) whose interval spans more than two orders of magnitude
  (or reaches 0). A coefficient that multiplies a power (A in A/N^alpha) is the term's value at N = 1,
  often decades outside the data, where its spread is its exponent's spread times log N (already judged
  by the exponent rule); when the fitter gives the data's centre, the coefficient is judged as the term's
  value there (A/N_c^alpha), which is what the runs pin down;
- any other parameter (slopes, quality shifts) whose interval is wider than its value;
- more than half of the resamples failing to refit (the fit only works on the exact data it saw).

Any of these makes an otherwise converged fit `FitStatus.POORLY_IDENTIFIED`, with the parameter named.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from robustperf.scaling.fit_metrics import Identifiability
from robustperf.scaling.result import FitResult, FitStatus, warn_status

EXPONENTS = frozenset({"alpha", "beta", "kappa", "a", "b", "l_exponent"})
COEFFICIENTS = frozenset({"A", "B", "E", "C", "Q", "N_coef", "D_coef", "L_coef"})
COEFFICIENT_DECADES = 2.0  # a coefficient known only to within 100x is not known
MIN_RESAMPLES = 20  # fewer successful resamples cannot support a 95 % interval
MAX_FAILED_SHARE = 0.5


def unidentified(fit: FitResult, names: Iterable[str] | None = None, *, level: float = 0.95,
                 centres: dict[str, tuple[str, float]] | None = None) -> tuple[list[str], list[str]]:
    """The parameters of ``fit`` its bootstrap does not pin down.

    Args:
        fit: a fit with a bootstrap.
        names: parameters to judge (default: every fitted parameter with bootstrap samples).
        level: interval coverage.
        centres: coefficient -> (its exponent, log of the data's centre on that axis): judge the term's
            value at the centre instead of the coefficient (see the module doc).

    Returns:
        (names of poorly identified parameters, one reason per problem).
    """
    boot = fit.bootstrap
    if boot is None:
        return [], []
    bad: list[str] = []
    reasons: list[str] = []
    n_ok = boot.n_resamples - boot.n_failed
    if boot.n_resamples and boot.n_failed > MAX_FAILED_SHARE * boot.n_resamples:
        reasons.append(f"{boot.n_failed} of {boot.n_resamples} bootstrap refits failed")
    if n_ok < MIN_RESAMPLES:
        reasons.append(f"only {n_ok} bootstrap refits succeeded; at least {MIN_RESAMPLES} are needed to judge")
        return list(names or fit.params), reasons
    for name in names if names is not None else fit.params:
        samples = boot.samples.get(name)
        if samples is None or name not in fit.params:
            continue
        value = fit.params[name]
        lo, hi = boot.interval(name, level)
        if centres and name in centres and centres[name][0] in boot.samples:
            why = _judge_at_centre(name, fit, centres[name], level)
        else:
            why = _judge(name, value, lo, hi, level)
        if why:
            bad.append(name)
            reasons.append(why)
    return bad, reasons


def _judge_at_centre(name: str, fit: FitResult, centre: tuple[str, float], level: float) -> str:
    """A coefficient judged as its term's value at the data's centre (e.g. A / N_c^alpha)."""
    assert fit.bootstrap is not None
    exponent, log_c = centre
    with np.errstate(all="ignore"):
        terms = np.log10(fit.bootstrap.samples[name]) - fit.bootstrap.samples[exponent] * log_c / np.log(10.0)
    tail = 50.0 * (1.0 - level)
    lo, hi = np.nanpercentile(terms, [tail, 100.0 - tail])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{name}: its term's {level:.0%} interval at the data's centre is not finite"
    if hi - lo > COEFFICIENT_DECADES:
        value = fit.params[name] * math.exp(-fit.params[exponent] * log_c)
        return (f"{name}: its term at the data's centre ({value:.3g}) has a {level:.0%} interval spanning "
                f"{hi - lo:.1f} orders of magnitude (> {COEFFICIENT_DECADES:g})")
    return ""


def _judge(name: str, value: float, lo: float, hi: float, level: float) -> str:
    pct = f"{level:.0%}"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{name}: {pct} interval is not finite"
    if name in COEFFICIENTS and value > 0:
        if lo <= 0:
            return f"{name}: {pct} interval [{lo:.3g}, {hi:.3g}] reaches 0"
        decades = math.log10(hi / lo)
        if decades > COEFFICIENT_DECADES:
            return (f"{name} = {value:.3g}: {pct} interval [{lo:.3g}, {hi:.3g}] spans {decades:.1f} orders of "
                    f"magnitude (> {COEFFICIENT_DECADES:g})")
        return ""
    if hi - lo > abs(value):
        kind = "an exponent" if name in EXPONENTS else "a parameter"
        return f"{name} = {value:.3g} ({kind}): {pct} interval [{lo:.3g}, {hi:.3g}] is wider than its value"
    return ""


def assess(fit: FitResult, names: Iterable[str] | None = None, *, what: str = "fit", level: float = 0.95,
           fix: str = "", replaces: tuple[FitStatus, ...] = (),
           centres: dict[str, tuple[str, float]] | None = None) -> FitResult:
    """``fit`` with its identifiability recorded and, if a parameter is not pinned down, a non-ok status.

    A fit that is already not ok keeps its status (the identifiability is still recorded), except the
    statuses in ``replaces``: a surface flagged `DEGENERATE` by the fixed dead-term rule becomes
    `POORLY_IDENTIFIED` when the bootstrap names the parameters, since that is the evidence from the data.
    Without a bootstrap nothing is checked and the metrics say so.

    Args:
        fit: the fit.
        names: parameters to judge (default: all).
        what: the fitter's name for the warning.
        level: interval coverage.
        fix: advice appended to the message (e.g. "spread D over at least a decade").
        replaces: non-ok statuses that a bootstrap verdict overrides.
        centres: see `unidentified`.
    """
    if fit.bootstrap is None:
        unchecked = Identifiability(checked=False, reason="no bootstrap (identifiability not checked)")
        return replace(fit, metrics=fit.metrics.with_(identifiability=unchecked))
    bad, reasons = unidentified(fit, names, level=level, centres=centres)
    info = Identifiability(checked=True, level=level, poorly_identified=tuple(bad), reasons=tuple(reasons),
                           n_resamples=fit.bootstrap.n_resamples, n_failed=fit.bootstrap.n_failed)
    if not reasons:
        return replace(fit, metrics=fit.metrics.with_(identifiability=info))
    message = fit.message
    if bad:
        message += f"; poorly identified: {', '.join(bad)} ({'; '.join(reasons)})"
    else:
        message += f"; {'; '.join(reasons)}"
    if fix:
        message += f". {fix}"
    status = fit.status
    if bad and fit.status in (FitStatus.OK, *replaces):
        status = FitStatus.POORLY_IDENTIFIED
        warn_status(what, status, message)
    return replace(fit, status=status, message=message, metrics=fit.metrics.with_(identifiability=info))


def relative_width(fit: FitResult, name: str, level: float = 0.95) -> float:
    """(high - low) / |value| of a parameter's bootstrap interval (nan without a bootstrap)."""
    if fit.bootstrap is None or name not in fit.bootstrap.samples:
        return float("nan")
    lo, hi = fit.bootstrap.interval(name, level)
    value = fit.params[name]
    return float((hi - lo) / abs(value)) if value else float(np.inf)
