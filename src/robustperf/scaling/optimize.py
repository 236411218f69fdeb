"""Batched multi-start optimisation: many L-BFGS runs advanced together in numpy.

The papers fit their laws by running L-BFGS from every point of an initialisation grid (3125 starts
for Approach 2, papers/001 App. F.2.1). One `scipy.optimize.minimize` call per start spends most of
its time in Python overhead; here every start is one row of a (S, P) array, the objective returns
values (S,) and analytic gradients (S, P) in one vectorised call, and the L-BFGS two-loop recursion
and an Armijo backtracking line search run on all rows at once. Rows stop independently.

`multistart_minimize` runs the batch on the whole grid for a few iterations, keeps the best starts,
runs those to convergence, and polishes the best few with scipy's L-BFGS-B (analytic gradient), so the
final optimum is a scipy optimum, not a heuristic one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

log = logging.getLogger(__name__)

# fun(X (S,P), rows (S,) int indices into the batch) -> (f (S,), grad (S,P)); inf marks infeasible points.
BatchObjective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BatchResult:
    """Rows of a batched minimisation."""

    x: np.ndarray  # (S, P)
    f: np.ndarray  # (S,)
    grad: np.ndarray  # (S, P)
    converged: np.ndarray  # (S,) bool
    n_iter: int


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss and its derivative, elementwise (Hoffmann et al. 2022 use delta = 1e-3)."""
    a = np.abs(r)
    quad = a <= delta
    loss = np.where(quad, 0.5 * r * r, delta * (a - 0.5 * delta))
    return loss, np.clip(r, -delta, delta)


def _two_loop(g: np.ndarray, s_hist: np.ndarray, y_hist: np.ndarray, rho: np.ndarray, order: list[int],
              gamma: np.ndarray) -> np.ndarray:
    """L-BFGS direction -H g for every row; history slots in ``order`` (newest first)."""
    q = g.copy()
    alphas = []
    for j in order:  # newest -> oldest
        a = rho[j] * np.einsum("sp,sp->s", s_hist[j], q)
        q -= a[:, None] * y_hist[j]
        alphas.append(a)
    r = gamma[:, None] * q
    for j, a in zip(reversed(order), reversed(alphas), strict=True):  # oldest -> newest
        b = rho[j] * np.einsum("sp,sp->s", y_hist[j], r)
        r += (a - b)[:, None] * s_hist[j]
    return -r


def batched_lbfgs(fun: BatchObjective, x0: np.ndarray, *, max_iter: int = 500, memory: int = 10,
                  ftol: float = 1e-12, gtol: float = 1e-10, max_backtracks: int = 30) -> BatchResult:
    """Minimise S independent problems at once with L-BFGS and Armijo backtracking.

    Args:
        fun: vectorised objective and gradient over rows (see `BatchObjective`).
        x0: starting points, shape (S, P).
        max_iter: iterations per row.
        memory: L-BFGS history length.
        ftol: a row stops when its relative decrease falls below this.
        gtol: a row stops when its largest gradient entry falls below this.
        max_backtracks: halvings of the step before a row is declared stalled.

    Returns:
        `BatchResult`; ``converged`` is False for rows that hit ``max_iter``.
    """
    x = np.array(x0, dtype=float)
    S, P = x.shape
    all_rows = np.arange(S)
    f, g = fun(x, all_rows)
    s_hist = np.zeros((memory, S, P))
    y_hist = np.zeros((memory, S, P))
    rho = np.zeros((memory, S))
    gamma = np.ones(S)
    active = np.isfinite(f)
    converged = ~active & False
    first = np.ones(S, dtype=bool)
    slots: list[int] = []  # history slots, newest first
    n_iter = 0
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        n_iter += 1
        gr = g[rows]
        d = _two_loop(gr, s_hist[:, rows], y_hist[:, rows], rho[:, rows], slots, gamma[rows])
        slope = np.einsum("sp,sp->s", gr, d)
        bad = ~(slope < 0) | ~np.all(np.isfinite(d), axis=1)
        d[bad] = -gr[bad]
        slope[bad] = -np.einsum("sp,sp->s", gr[bad], gr[bad])
        # First step of a row (or after a reset): a unit move in parameter space at most.
        t = np.ones(rows.size)
        fresh = first[rows] | bad
        t[fresh] = np.minimum(1.0, 1.0 / np.maximum(np.abs(d[fresh]).max(axis=1), 1e-300))
        x_new, f_new, g_new, ok = _armijo(fun, x[rows], f[rows], d, slope, t, rows, max_backtracks)
        stalled = ~ok
        s = x_new - x[rows]
        y = g_new - g[rows]
        sy = np.einsum("sp,sp->s", s, y)
        good = ok & (sy > 1e-300)
        slot = (slots[-1] if len(slots) == memory else len(slots))
        s_hist[slot, rows] = np.where(good[:, None], s, 0.0)
        y_hist[slot, rows] = np.where(good[:, None], y, 0.0)
        rho[slot, rows] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        yy = np.einsum("sp,sp->s", y, y)
        gamma[rows] = np.where(good & (yy > 0), sy / np.where(yy > 0, yy, 1.0), gamma[rows])
        slots = [slot] + [j for j in slots if j != slot][: memory - 1]
        first[rows] = False
        decrease = f[rows] - f_new
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        small_f = ok & (decrease <= ftol * np.maximum(np.abs(f_new), 1e-300))
        small_g = np.abs(g_new).max(axis=1) <= gtol
        done = small_f | small_g | stalled
        converged[rows[done]] = (small_f | small_g | (stalled & (np.abs(g_new).max(axis=1) <= 1e3 * gtol)))[done]
        active[rows[done]] = False
    return BatchResult(x=x, f=f, grad=g, converged=converged, n_iter=n_iter)


def _armijo(fun: BatchObjective, x: np.ndarray, f: np.ndarray, d: np.ndarray, slope: np.ndarray, t: np.ndarray,
            rows: np.ndarray, max_backtracks: int, c1: float = 1e-4
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backtracking line search on all rows; rows that never satisfy Armijo keep their point."""
    x_new = x.copy()
    f_new = f.copy()
    g_new = np.zeros_like(x)
    ok = np.zeros(len(x), dtype=bool)
    todo = np.arange(len(x))
    t = t.copy()
    for _ in range(max_backtracks):
        trial = x[todo] + t[todo, None] * d[todo]
        ft, gt = fun(trial, rows[todo])
        accept = np.isfinite(ft) & (ft <= f[todo] + c1 * t[todo] * slope[todo])
        acc = todo[accept]
        x_new[acc], f_new[acc], g_new[acc] = trial[accept], ft[accept], gt[accept]
        ok[acc] = True
        todo = todo[~accept]
        if todo.size == 0:
            break
        t[todo] *= 0.5
    if todo.size:
        _, g_keep = fun(x[todo], rows[todo])
        g_new[todo] = g_keep
    return x_new, f_new, g_new, ok


@dataclass(frozen=True)
class MultistartResult:
    """Best optimum over all starts, plus the distinct runner-up optima (for warm-starting resamples)."""

    x: np.ndarray
    f: float
    success: bool
    message: str
    top_x: np.ndarray  # (k, P) best distinct optima, best first
    n_starts: int


def multistart_minimize(fun: BatchObjective, x0: np.ndarray, *, bounds: list[tuple[float | None, float | None]] | None = None,
                        prune_iter: int = 25, keep: int = 64, max_iter: int = 1000, n_polish: int = 3,
                        ftol: float = 1e-12, polish_gtol: float = 1e-6, chunk_rows: int = 4096
                        ) -> MultistartResult:
    """L-BFGS from every row of ``x0``: batched, pruned, then the best few polished by scipy.

    Args:
        fun: vectorised objective/gradient (rows index the batch; one shared data set here).
        x0: the initialisation grid, shape (S, P).
        bounds: optional box for the scipy polish (L-BFGS-B); the batch treats inf as infeasible.
        prune_iter: batched iterations run on every start before keeping the best ``keep``.
            0 disables pruning (every start runs to convergence).
        keep: starts kept after pruning.
        max_iter: iterations for the kept starts.
        n_polish: best distinct optima polished with scipy L-BFGS-B.
        ftol: relative-decrease tolerance of the batch.
        polish_gtol: largest projected-gradient entry accepted as converged when scipy's line search
            stops abnormally.
        chunk_rows: starts pruned per batch (memory grows with rows x data points).
    """
    x0 = np.asarray(x0, dtype=float)
    S = x0.shape[0]
    if prune_iter > 0 and keep < S:
        # Chunks bound the memory of the (rows, points) temporaries for very large grids.
        parts = [batched_lbfgs(fun, x0[i : i + chunk_rows], max_iter=prune_iter, ftol=ftol)
                 for i in range(0, S, chunk_rows)]
        xs = np.vstack([p.x for p in parts])
        fs = np.concatenate([p.f for p in parts])
        order = np.argsort(np.where(np.isfinite(fs), fs, np.inf))[:keep]
        starts = xs[order]
    else:
        starts = x0
    run = batched_lbfgs(fun, starts, max_iter=max_iter, ftol=ftol)
    order = np.argsort(np.where(np.isfinite(run.f), run.f, np.inf))
    top = _distinct(run.x[order], n=max(n_polish, 1))
    best_x, best_f, success, message = None, np.inf, False, "no finite objective at any start"
    for x_start in top[:n_polish] if n_polish > 0 else top[:1]:
        if n_polish > 0:
            res = _polish(fun, x_start, bounds)
            x_end, f_end = res.x, float(res.fun)
            ok, msg = _polish_verdict(fun, res, bounds, polish_gtol)
        else:
            x_end = x_start
            f_end = float(fun(x_start[None], np.zeros(1, dtype=int))[0][0])
            match = np.all(run.x == x_start, axis=1)
            ok = bool(np.any(run.converged[match]))
            msg = "batched L-BFGS " + ("converged" if ok else f"stopped at max_iter={max_iter}")
        if np.isfinite(f_end) and f_end < best_f:
            best_x, best_f, success, message = x_end, f_end, ok, msg
    if best_x is None:
        best_x = top[0]
    return MultistartResult(x=np.asarray(best_x), f=best_f, success=success, message=message, top_x=top, n_starts=S)


def _polish_verdict(fun: BatchObjective, res: Any, bounds: list[tuple[float | None, float | None]] | None,
                    gtol: float) -> tuple[bool, str]:
    """(converged?, a message that agrees with the verdict) for a scipy L-BFGS-B result.

    L-BFGS-B reports ABNORMAL when its line search cannot improve a point that is already optimal to
    machine precision (common with the Huber loss's kinks). Such a stop counts as converged only if the
    projected gradient is below ``gtol`` and a fresh restart from the point finds nothing lower; any
    other abnormal stop is not converged, whatever the objective looks like.
    """
    grad = float(np.max(np.abs(_projected(res.jac, res.x, bounds)))) if np.size(res.jac) else 0.0
    if bool(res.success):
        return True, f"converged (L-BFGS-B: {res.message}; max |gradient| {grad:.1e})"
    if grad <= gtol:
        again = _polish(fun, np.asarray(res.x, dtype=float), bounds)
        if float(again.fun) >= float(res.fun) - 1e-12 * max(1.0, abs(float(res.fun))):
            return True, (f"converged (max |gradient| {grad:.1e} <= {gtol:g}; L-BFGS-B's line search stopped at a "
                          "point a restart cannot improve)")
        return False, (f"not converged: L-BFGS-B stopped ({res.message}) but a restart lowered the objective "
                       f"from {float(res.fun):.6g} to {float(again.fun):.6g}")
    return False, f"not converged: L-BFGS-B stopped ({res.message}) with max |gradient| {grad:.1e} > {gtol:g}"


def _distinct(x_sorted: np.ndarray, n: int, rtol: float = 1e-3) -> np.ndarray:
    """The first ``n`` rows that differ from every earlier kept row (optima reached from many starts)."""
    kept: list[np.ndarray] = []
    for row in x_sorted:
        if not np.all(np.isfinite(row)):
            continue
        if all(np.max(np.abs(row - k) / (1.0 + np.abs(k))) > rtol for k in kept):
            kept.append(row)
        if len(kept) == n:
            break
    return np.array(kept) if kept else x_sorted[:1]


def _projected(g: np.ndarray, x: np.ndarray, bounds: list[tuple[float | None, float | None]] | None) -> np.ndarray:
    """Gradient with components pushing against an active bound zeroed (KKT check for L-BFGS-B)."""
    g = np.array(g, dtype=float)
    if bounds is None:
        return g
    for i, (lo, hi) in enumerate(bounds):
        if lo is not None and x[i] <= lo + 1e-12 * (1 + abs(lo)) and g[i] > 0:
            g[i] = 0.0
        if hi is not None and x[i] >= hi - 1e-12 * (1 + abs(hi)) and g[i] < 0:
            g[i] = 0.0
    return g


def _polish(fun: BatchObjective, x: np.ndarray, bounds: list[tuple[float | None, float | None]] | None):
    zero = np.zeros(1, dtype=int)

    def scalar(v: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fun(v[None, :], zero)
        if not np.isfinite(f[0]):
            return 1e300, np.zeros_like(v)
        return float(f[0]), g[0]

    return minimize(scalar, x, jac=True, method="L-BFGS-B", bounds=bounds,
                    options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
