"""Envelope fits: power laws on the best runs per compute bin, and Approach 1.

- `fit_envelope_power_law` (Debenedetti et al. 2023, papers/002 Sec. 3.2): split the FLOPs range into
  bins, keep the best run per bin, fit y = C x^alpha by least squares in log-log space, report R^2.
- `fit_approach1` (Bartoldson et al. 2024, papers/001 Sec. 3.2.1 and App. F.1): the lowest loss over all
  training curves at 1000 log-spaced FLOPs, only where the loss improves, and log-space regressions of
  L*, N*, D* on FLOPs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.fit_metrics import FitMetrics, Identifiability
from robustperf.scaling.identify import COEFFICIENT_DECADES, assess
from robustperf.scaling.result import (
    STATUS_OK,
    STATUS_POORLY_IDENTIFIED,
    STATUS_TOO_FEW_POINTS,
    BootstrapResult,
    FitResult,
    ScalingError,
    warn_status,
)

log = logging.getLogger(__name__)

Binning = Literal["log", "linear"]
Best = Literal["max", "min"]


def envelope_points(x: ArrayLike, y: ArrayLike, *, n_bins: int = 19, binning: Binning = "log",
                    best: Best = "max") -> np.ndarray:
    """Indices of the best run in each of ``n_bins`` equal-width bins of ``x``.

    Args:
        x: compute per run (FLOPs, > 0 for log binning).
        y: the quantity to envelope (accuracy: ``best="max"``; error or loss: ``best="min"``).
        n_bins: bins over [min x, max x] (papers/002: 19).
        binning: "log" (equal widths in log x) or "linear" (equal widths in x).
        best: keep the maximum or the minimum ``y`` of each bin.

    Returns:
        Indices into ``x`` sorted by ``x``; empty bins contribute nothing.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if ok.size == 0:
        return np.zeros(0, dtype=int)
    if binning == "log":
        if np.any(x[ok] <= 0):
            raise ScalingError("log binning needs x > 0; use binning='linear' or drop non-positive x")
        coord = np.log(x[ok])
    elif binning == "linear":
        coord = x[ok]
    else:
        raise ScalingError(f"binning must be 'log' or 'linear', got {binning!r}")
    if best not in ("max", "min"):
        raise ScalingError(f"best must be 'max' or 'min', got {best!r}")
    edges = np.linspace(coord.min(), coord.max(), n_bins + 1)
    bin_of = np.clip(np.searchsorted(edges, coord, side="right") - 1, 0, n_bins - 1)
    score = y[ok] if best == "max" else -y[ok]
    best_per_bin = []
    for b in np.unique(bin_of):
        members = np.flatnonzero(bin_of == b)
        best_per_bin.append(ok[members[np.argmax(score[members])]])
    chosen = np.array(best_per_bin, dtype=int)
    return chosen[np.argsort(x[chosen], kind="stable")]


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Least squares of log y = log C + alpha log x: (C, alpha, R^2 in log space, residuals)."""
    lx, ly = np.log(x), np.log(y)
    alpha, log_c = np.polyfit(lx, ly, 1)
    resid = ly - (log_c + alpha * lx)
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    return float(np.exp(log_c)), float(alpha), r2, resid


def fit_envelope_power_law(flops: ArrayLike, y: ArrayLike, *, n_bins: int = 19,
                           binning: Binning = "log", best: Best = "max", min_y: float | None = None,
                           envelope: bool = True, bootstrap: int = 0, seed: int = 0) -> FitResult:
    """Fit y = C * FLOPs^alpha to the best run per FLOPs bin (papers/002 Sec. 3.2).

    Args:
        flops: compute per run.
        y: accuracy (``best="max"``, the paper's case) or error/loss (``best="min"``); must be > 0.
        n_bins: number of bins (papers/002: 19).
        binning: "log" or "linear" bin widths; the paper does not say, and the choice moves C and alpha.
        best: which run of a bin is the envelope.
        min_y: drop runs with y below this first (e.g. 1.0 to drop AutoAttack < 1 %, catastrophic overfitting).
        envelope: False fits all runs instead of the envelope.
        bootstrap: resamples of the envelope points for intervals of C and alpha (and the identifiability
            check: an alpha whose interval is wider than itself makes the fit ``poorly_identified``).
        seed: resampling seed.

    Returns:
        FitResult with law "power_law", params C and alpha, metrics r2 (log-log), the envelope indices and
        the x and y ranges of the envelope (a power law in accuracy is only valid inside its y range).
    """
    x = np.asarray(flops, dtype=float)
    yy = np.asarray(y, dtype=float)
    if x.shape != yy.shape:
        raise ScalingError(f"flops and y need the same length, got {x.shape} and {yy.shape}")
    keep = np.isfinite(x) & np.isfinite(yy) & (x > 0) & (yy > 0)
    if min_y is not None:
        keep &= yy >= min_y
    idx_all = np.flatnonzero(keep)
    if envelope:
        idx = idx_all[envelope_points(x[idx_all], yy[idx_all], n_bins=n_bins, binning=binning, best=best)]
    else:
        idx = idx_all
    if len(idx) < 3:
        msg = f"{len(idx)} points after filtering and binning; a power-law fit needs at least 3"
        warn_status("fit_envelope_power_law", STATUS_TOO_FEW_POINTS, msg)
        return FitResult({}, STATUS_TOO_FEW_POINTS, float("nan"), len(idx), law="power_law", message=msg)
    C, alpha, r2, resid = _loglog_fit(x[idx], yy[idx])
    boot = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(idx), size=(bootstrap, len(idx)))
        cs, alphas = [], []
        for row in draws:
            if np.ptp(x[idx][row]) == 0:
                continue
            c_b, a_b, _, _ = _loglog_fit(x[idx][row], yy[idx][row])
            cs.append(c_b)
            alphas.append(a_b)
        boot = BootstrapResult({"C": np.array(cs), "alpha": np.array(alphas)}, bootstrap, bootstrap - len(cs), seed)
    fit = FitResult(
        law="power_law", params={"C": C, "alpha": alpha}, status=STATUS_OK, objective=float(np.sum(resid**2)),
        n_points=len(idx), residuals=resid, bootstrap=boot,
        metrics=FitMetrics(r2=r2, envelope_indices=tuple(int(i) for i in idx), n_bins=n_bins, binning=binning,
                           best=best, n_candidates=len(idx_all), x_range=(float(x[idx].min()), float(x[idx].max())),
                           y_range=(float(yy[idx].min()), float(yy[idx].max()))),
    )
    if boot is not None and len(boot.samples["C"]):
        # C is the law's value at x = 1, often many decades outside the data, so its interval mostly
        # restates alpha's. What the data pin down is alpha and the level at their own centre.
        log_xc = float(np.mean(np.log(x[idx])))
        level = np.log10(boot.samples["C"]) + boot.samples["alpha"] * log_xc / np.log(10.0)
        lo, hi = np.nanpercentile(level, [2.5, 97.5])
        fit = replace(fit, metrics=fit.metrics.with_(level_at_centre_decades=float(hi - lo)))
        checked = assess(fit, ["alpha"], what="fit_envelope_power_law")
        if hi - lo > COEFFICIENT_DECADES and checked.ok:
            msg = (f"; poorly identified: C (the law's level at the data's centre, {np.exp(log_xc):.3g}, spans "
                   f"{hi - lo:.1f} orders of magnitude)")
            info = checked.metrics.identifiability or Identifiability(checked=True)
            ident = replace(info, poorly_identified=("C",), reasons=(*info.problems, msg.split(": ", 1)[1]))
            warn_status("fit_envelope_power_law", STATUS_POORLY_IDENTIFIED, msg)
            checked = replace(checked, status=STATUS_POORLY_IDENTIFIED, message=checked.message + msg,
                              metrics=checked.metrics.with_(identifiability=ident))
        return checked
    return assess(fit, what="fit_envelope_power_law")


def fit_power_law(x: ArrayLike, y: ArrayLike, *, envelope: bool = True, n_bins: int = 19,
                  binning: Binning = "log", best: Best = "min", bootstrap: int = 0, seed: int = 0) -> FitResult:
    """Fit y = C x^alpha, y an error or a loss (lower is better), on the envelope by default.

    The envelope keeps the lowest ``y`` per bin of ``x``; give ``best="max"`` for accuracies.
    See `fit_envelope_power_law` for the arguments.
    """
    return fit_envelope_power_law(x, y, n_bins=n_bins, binning=binning, best=best, envelope=envelope,
                                  bootstrap=bootstrap, seed=seed)


def _curve_envelope(curves: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray]], queries: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lowest interpolated loss over curves at each query FLOPs, with that curve's N and D there."""
    best_l = np.full(len(queries), np.inf)
    best_n = np.full(len(queries), np.nan)
    best_d = np.full(len(queries), np.nan)
    lq = np.log(queries)
    for n_params, flops, loss, samples in curves:
        lf = np.log(flops)
        inside = (lq >= lf[0]) & (lq <= lf[-1])
        if not inside.any():
            continue
        l_at = np.interp(lq[inside], lf, loss)
        d_at = np.exp(np.interp(lq[inside], lf, np.log(samples)))
        better = l_at < best_l[inside]
        where = np.flatnonzero(inside)[better]
        best_l[where], best_n[where], best_d[where] = l_at[better], n_params, d_at[better]
    return best_l, best_n, best_d


def fit_approach1(run_id: ArrayLike, n_params: ArrayLike, flops: ArrayLike, loss: ArrayLike,
                  samples: ArrayLike, *, n_queries: int = 1000, bootstrap: int = 0, seed: int = 0) -> FitResult:
    """Bartoldson et al. 2024 Approach 1 (papers/001 App. F.1) on training curves of one data set.

    Args:
        run_id: curve identifier per row (one training run = one curve).
        n_params: model parameters N of the row's run.
        flops: cumulative training FLOPs at the row (e.g. per-epoch evaluation points).
        loss: adversarial test loss at the row.
        samples: training samples seen at the row (D).
        n_queries: log-spaced FLOPs values at which the envelope is read (papers/001: 1000).
        bootstrap: resamples of the training curves (runs drawn with replacement, the envelope and the
            regressions redone) for intervals of every parameter and the identifiability check.
        seed: resampling seed.

    Returns:
        FitResult (law "") with params: a and N_coef (N* = N_coef C^a), b and D_coef (D* = D_coef C^b),
        l_exponent and L_coef (L* = L_coef C^l_exponent); metrics hold the R^2 of each regression and the
        number of envelope points kept.
    """
    rid = np.asarray(run_id)
    arrays = [np.asarray(v, dtype=float) for v in (n_params, flops, loss, samples)]
    if len({len(rid), *(len(a) for a in arrays)}) != 1:
        raise ScalingError("run_id, n_params, flops, loss and samples need the same length")
    n_arr, f_arr, l_arr, s_arr = arrays
    good = np.isfinite(f_arr) & np.isfinite(l_arr) & (f_arr > 0) & (s_arr > 0) & (l_arr > 0)
    curves = []
    for r in np.unique(rid[good]):
        m = good & (rid == r)
        order = np.argsort(f_arr[m])
        curves.append((float(n_arr[m][0]), f_arr[m][order], l_arr[m][order], s_arr[m][order]))
    if len(curves) < 2:
        raise ScalingError(f"Approach 1 needs training curves of at least 2 runs, got {len(curves)}")
    queries = np.geomspace(f_arr[good].min(), f_arr[good].max(), n_queries)
    q, lstar, nstar, dstar = _improving_envelope(curves, queries)
    if len(q) < 3:
        msg = f"{len(q)} improving envelope points; Approach 1 needs at least 3"
        warn_status("fit_approach1", STATUS_TOO_FEW_POINTS, msg)
        return FitResult({}, STATUS_TOO_FEW_POINTS, float("nan"), len(q), message=msg)
    params, (r2_n, r2_d, r2_l), res_n = _approach1_regressions(q, lstar, nstar, dstar)
    boot = _bootstrap_approach1(curves, queries, bootstrap, seed) if bootstrap > 0 else None
    fit = FitResult(
        law="", params=params, status=STATUS_OK, objective=float(np.sum(res_n**2)), n_points=len(q),
        residuals=res_n, bootstrap=boot,
        metrics=FitMetrics(r2_N=r2_n, r2_D=r2_d, r2_L=r2_l, n_curves=len(curves), n_model_sizes=len({c[0] for c in curves}),
                           envelope_flops=tuple(q.tolist()), envelope_loss=tuple(lstar.tolist()),
                           envelope_N=tuple(nstar.tolist()), envelope_D=tuple(dstar.tolist())),
    )
    # The exponents and L's coefficient carry the result; N_coef and D_coef trade off against a and b
    # over the FLOPs range (like A against alpha), so their spread says nothing new.
    return assess(fit, ["a", "b", "l_exponent", "L_coef"], what="fit_approach1")


def _improving_envelope(curves: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray]], queries: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Envelope points where the loss improves on every smaller budget (App. F.1): (C, L*, N*, D*)."""
    best_l, best_n, best_d = _curve_envelope(curves, queries)
    running = np.minimum.accumulate(np.where(np.isfinite(best_l), best_l, np.inf))
    improves = np.isfinite(best_l) & (best_l <= running) & np.r_[True, running[1:] < running[:-1]]
    return queries[improves], best_l[improves], best_n[improves], best_d[improves]


def _approach1_regressions(q: np.ndarray, lstar: np.ndarray, nstar: np.ndarray, dstar: np.ndarray
                           ) -> tuple[dict[str, float], tuple[float, float, float], np.ndarray]:
    n_coef, a, r2_n, res_n = _loglog_fit(q, nstar)
    d_coef, b, r2_d, _ = _loglog_fit(q, dstar)
    l_coef, l_exp, r2_l, _ = _loglog_fit(q, lstar)
    params = {"a": a, "N_coef": n_coef, "b": b, "D_coef": d_coef, "l_exponent": l_exp, "L_coef": l_coef}
    return params, (r2_n, r2_d, r2_l), res_n


def _bootstrap_approach1(curves: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray]], queries: np.ndarray,
                         n_resamples: int, seed: int) -> BootstrapResult:
    """Resample whole training curves (a run is the unit of data), redo the envelope and the regressions."""
    rng = np.random.default_rng(seed)
    names = ("a", "N_coef", "b", "D_coef", "l_exponent", "L_coef")
    rows: list[list[float]] = []
    for _ in range(n_resamples):
        pick = np.unique(rng.integers(0, len(curves), len(curves)))  # duplicates do not change an envelope
        q, lstar, nstar, dstar = _improving_envelope([curves[i] for i in pick], queries)
        if len(q) < 3 or np.ptp(np.log(nstar)) == 0:
            continue  # one model size left: N* is constant and the slope is meaningless
        params, _, _ = _approach1_regressions(q, lstar, nstar, dstar)
        rows.append([params[k] for k in names])
    values = np.array(rows, dtype=float).reshape(-1, len(names))
    return BootstrapResult({k: values[:, i] for i, k in enumerate(names)}, n_resamples, n_resamples - len(rows), seed)
