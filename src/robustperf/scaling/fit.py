"""Fit the parametric laws: Chinchilla, Bartoldson Approach 2 and Approach 3 (papers/001 App. F).

Every fitter follows the papers: Huber loss (delta 1e-3) on log residuals, summed over points, L-BFGS
from every point of an initialisation grid, best objective kept. The grid is run batched
(`robustperf.scaling.optimize`), and the best optima are polished with scipy. Bootstrap resamples are
refitted in one batch as well, warm-started from the best distinct full-data optima.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.earned_ok import earn_ok
from robustperf.scaling.fit_metrics import FitMetrics, LogCentre
from robustperf.scaling.identify import assess
from robustperf.scaling.objectives import A2_NAMES, A3_NAMES, Approach2Objective, Approach3Objective
from robustperf.scaling.optimize import BatchObjective, MultistartResult, batched_lbfgs, multistart_minimize
from robustperf.scaling.result import (
    STATUS_DEGENERATE,
    STATUS_NOT_CONVERGED,
    STATUS_OK,
    STATUS_TOO_FEW_POINTS,
    BootstrapResult,
    FitResult,
    ScalingError,
    warn_status,
)

log = logging.getLogger(__name__)

# papers/001 App. F.2.1 initialisation grids.
APPROACH2_GRID: dict[str, tuple[float, ...]] = {
    "a": (0.0, 1.0, 2.0, 5.0, 10.0),
    "b": (0.0, 1.0, 2.0, 5.0, 10.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.1, 0.25, 0.5, 1.0),
    "beta": (0.0, 0.1, 0.25, 0.5, 1.0),
}
QUALITY_GRID: dict[str, tuple[float, ...]] = {"zeta": (-0.3, -0.15, 0.15, 0.3), "eps": (0.01, 0.1, 0.2)}
# papers/001 App. F.3.1.
APPROACH3_GRID: dict[str, tuple[float, ...]] = {
    "A": (5.0, 6.0, 7.0),
    "B": (6500.0, 7000.0, 7500.0),
    "E": (0.6, 0.5),
    "Q": (0.01, 0.5),
    "alpha": (0.1, 0.2, 0.3),
    "beta": (0.1, 0.2, 0.3),
    "kappa": (0.8, 0.6),
    "eps": (0.01,),
}


@dataclass(frozen=True)
class FitOptions:
    """Optimiser settings shared by the parametric fitters.

    Attributes:
        delta: Huber delta on log residuals (papers/001: 1e-3).
        prune_iter: batched L-BFGS iterations on every grid start before keeping the best ``keep``
            (0: run every start to convergence).
        keep: starts kept after pruning.
        n_polish: best distinct optima polished with scipy L-BFGS-B.
        max_iter: iterations of the batched L-BFGS.
    """

    delta: float = 1e-3
    prune_iter: int = 25
    keep: int = 64
    n_polish: int = 3
    max_iter: int = 1000


def grid_points(grid: Mapping[str, Sequence[float]], names: Sequence[str]) -> np.ndarray:
    """Cartesian product of a grid, columns ordered as ``names``."""
    return np.array(list(itertools.product(*(grid[k] for k in names))), dtype=float)


def bartoldson_keep_mask(N: np.ndarray, D: np.ndarray, fid: np.ndarray, *, n_below: float = 1e8,
                         d_above: float = 1e7, fid_below: float = 10.0) -> np.ndarray:
    """Rows to keep under papers/001 App. F.2.1's filter: drop N < 100M and D > 10M and FID < 10 together."""
    return ~((np.asarray(N) < n_below) & (np.asarray(D) > d_above) & (np.asarray(fid) < fid_below))


def _as_arrays(N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = np.asarray(N, dtype=float).ravel()
    d = np.asarray(D, dtype=float).ravel()
    loss = np.asarray(L, dtype=float).ravel()
    f = np.zeros_like(n) if fid is None else np.broadcast_to(np.asarray(fid, dtype=float), n.shape).copy()
    if not (len(n) == len(d) == len(loss)):
        raise ScalingError(f"N, D and L need the same length, got {len(n)}, {len(d)}, {len(loss)}")
    good = np.isfinite(n) & np.isfinite(d) & np.isfinite(loss) & np.isfinite(f)
    if np.any((n[good] <= 0) | (d[good] <= 0) | (loss[good] <= 0)):
        raise ScalingError("N, D and L must be > 0 (the laws are fitted on their logs); drop or fix those rows")
    if np.any(f[good] < 0):
        raise ScalingError("FID must be >= 0")
    if not good.all():
        log.info("dropping %d rows with missing values", int((~good).sum()))
    return n[good], d[good], loss[good], f[good], good


def _resample_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap as integer point weights: row i of the result counts each point's draws."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    w = np.zeros((n_resamples, n))
    np.add.at(w, (np.repeat(np.arange(n_resamples), n), idx.ravel()), 1.0)
    return w


def _chunks(n_rows: int, n_points: int, per_row: int = 1, max_elements: int = 2_000_000) -> list[slice]:
    """Row slices whose (rows x per_row x points) temporaries stay near ``max_elements`` doubles."""
    size = max(1, max_elements // max(1, n_points * per_row))
    return [slice(i, min(i + size, n_rows)) for i in range(0, n_rows, size)]


def _batched_refit(make_objective: Callable[[np.ndarray], BatchObjective], starts: np.ndarray, weights: np.ndarray,
                   max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit every resample from every start, batched in memory-bounded chunks; keep each resample's best.

    Returns:
        (x (R, P), f (R,), converged (R,)).
    """
    R, k = len(weights), len(starts)
    xs, fs, convs = [], [], []
    for part in _chunks(R, weights.shape[1], k):
        w = weights[part]
        r = len(w)
        w_rows = np.repeat(w, k, axis=0)  # row i*k + j: resample i, start j
        run = batched_lbfgs(make_objective(w_rows), np.tile(starts, (r, 1)), max_iter=max_iter)
        f = np.where(np.isfinite(run.f), run.f, np.inf).reshape(r, k)
        pick = np.arange(r) * k + f.argmin(axis=1)
        xs.append(run.x[pick])
        fs.append(f.min(axis=1))
        convs.append(run.converged[pick])
    return np.vstack(xs), np.concatenate(fs), np.concatenate(convs)


# --------------------------------------------------------------------------------------- Approach 2


@dataclass(frozen=True)
class _LogRuns:
    """The runs Approach 2 is fitted on, in the objective's terms (each of shape (n,)).

    Attributes:
        log_n, log_d, log_l: logs of parameters, training samples and loss.
        shift: log(1 + FID) - log(1 + FID_ref).
    """

    log_n: np.ndarray
    log_d: np.ndarray
    log_l: np.ndarray
    shift: np.ndarray

    def rows(self, mask: np.ndarray) -> _LogRuns:
        return _LogRuns(self.log_n[mask], self.log_d[mask], self.log_l[mask], self.shift[mask])

    def objective(self, free: Sequence[int], base: np.ndarray, weights: np.ndarray | None, delta: float
                  ) -> Approach2Objective:
        """The Huber objective of the parameters ``free`` (indices into `A2_NAMES`), the rest from ``base``."""
        return Approach2Objective(self.log_n, self.log_d, self.log_l, self.shift, tuple(free), base, weights, delta)


def _a2_params(theta: np.ndarray, fid_ref: float) -> dict[str, float]:
    a, b, e, alpha, beta, eps, zeta = (float(v) for v in theta)
    with np.errstate(over="ignore"):  # a runaway resample gives inf, which the bootstrap then drops
        return {"A": float(np.exp(a)), "B": float(np.exp(b)), "E": float(np.exp(e)), "alpha": alpha,
                "beta": beta, "eps": eps, "zeta": zeta}


def _a2_stage(runs: _LogRuns, free: Sequence[int], base: np.ndarray, grid_x: np.ndarray, opts: FitOptions
              ) -> tuple[Approach2Objective, MultistartResult]:
    obj = runs.objective(free, base[None, :], None, opts.delta)
    return obj, multistart_minimize(obj, grid_x, prune_iter=opts.prune_iter, keep=opts.keep,
                                    max_iter=opts.max_iter, n_polish=opts.n_polish)


AXIS_FIX = {
    "alpha": "N (parameters)", "A": "N (parameters)", "beta": "D (training samples)", "B": "D (training samples)",
}


def surface_fix(fit: FitResult) -> str:
    """Advice for a poorly identified L(N, D) fit: which axis of the grid to widen, or which runs to add for
    Approach 2's FID terms."""
    axes = sorted({AXIS_FIX[name] for name in fit.poorly_identified if name in AXIS_FIX})
    quality: list[str] = ([name for name in ("eps", "zeta") if name in fit.poorly_identified]
                          if fit.law == "approach2" else [])  # Approach 3's eps has no stages to tell apart
    advice = []
    if axes:
        advice.append(f"Widen the grid along {' and '.join(axes)}: at least 3 distinct values spanning a decade or "
                      "more (`robustperf study --check-design` checks a grid before training)")
    if quality:
        advice.append(_quality_fix(fit, quality))
    return ". ".join(advice) or "Add runs: more distinct model sizes and data sizes, each spanning at least a decade"


def _quality_fix(fit: FitResult, names: list[str]) -> str:
    """Where the FID terms' width comes from (`_stage2_given_stage1`), and so which runs to add."""
    given = fit.metrics.stage2_given_stage1 or {}
    ref = f"FID {fit.law_kwargs.get('fid_ref', 0.0):.3g}"
    carried = [n for n in names if n in given and given[n][1] - given[n][0] <= abs(fit.params[n])]
    parts = []
    if carried:
        spans = ", ".join(f"{n} [{given[n][0]:.3g}, {given[n][1]:.3g}]" for n in carried)
        parts.append(f"{', '.join(carried)}: pinned down when the base data set's fit is held ({spans}), so the "
                     f"width is the base data set's ({ref}) uncertainty carried over: add runs or seeds there")
    rest = [n for n in names if n not in carried]
    if rest:
        parts.append(f"{', '.join(rest)}: add runs or seeds on the other data sets (a D sweep at a large N for zeta, "
                     "the largest N and D for eps)")
    return "; ".join(parts)


def _assess_surface(fit: FitResult, names: Sequence[str], what: str) -> FitResult:
    centre = fit.metrics.log_centre  # A and B judged as their terms at the runs' centre
    centres = {"A": ("alpha", centre.N), "B": ("beta", centre.D)} if centre else None
    checked = assess(fit, names, what=what, replaces=(STATUS_DEGENERATE,), centres=centres)
    if checked.status != fit.status and checked.poorly_identified:
        fix = surface_fix(checked)
        checked = replace(checked, message=f"{checked.message}. {fix}")
    elif fit.bootstrap is not None and checked.status == fit.status:
        warn_status(what, checked.status, checked.message)  # not ok for another reason (e.g. not converged)
    return checked


def fit_approach2(N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None = None,
                  *, reference_fid: float | None = None, base_mask: ArrayLike | None = None,
                  joint: bool = False, drop_underfit: bool = False, grid: Mapping[str, Sequence[float]] | None = None,
                  quality_grid: Mapping[str, Sequence[float]] | None = None, bootstrap: int = 0, seed: int = 0,
                  options: FitOptions | None = None) -> FitResult:
    """Fit Bartoldson et al.'s Approach 2 (papers/001 Eq. 3, App. F.2.1).

    With a bootstrap, every fitted parameter is checked for identifiability
    (`robustperf.scaling.identify`): a converged fit whose resamples do not pin a parameter down comes
    back `poorly_identified`, naming it.

    Two stages as in the paper: A, B, E, alpha, beta on the base data set (one FID), then eps, zeta on
    the other data sets with the base parameters held fixed. B and E come out at the base data set's
    FID (``law_kwargs["fid_ref"]``); ``FitResult.to_law().at_reference(0)`` gives the paper's convention.

    Args:
        N, D, L: parameters, training samples and adversarial test loss per run.
        fid: FID of each run's training data (0 for real data), or one value for all; None means 0.
        reference_fid: FID of the base data set (default: the FID with the most runs; ties -> lowest).
        base_mask: rows of the base data set (overrides ``reference_fid`` selection).
        joint: fit all seven parameters at once on all rows instead of the two stages; the start grid is
            then ``grid`` x ``quality_grid`` (37,500 starts with the defaults: pass smaller grids).
        drop_underfit: apply the paper's filter (drop N < 100M and D > 10M and FID < 10).
        grid, quality_grid: initialisation grids (default: the paper's, 3125 and 12 starts).
        bootstrap: number of resamples for confidence intervals and the identifiability check (0: none).
        seed: resampling seed.
        options: optimiser settings.
    """
    fit = _fit_approach2(N, D, L, fid, reference_fid=reference_fid, base_mask=base_mask, joint=joint,
                         drop_underfit=drop_underfit, grid=grid, quality_grid=quality_grid, bootstrap=bootstrap,
                         seed=seed, options=options)
    names = ["A", "B", "E", "alpha", "beta"] + (["eps", "zeta"] if fit.metrics.quality_fitted else [])
    n, d, loss = _base_rows(N, D, L, fid, fit, drop_underfit, base_mask, joint)
    return earn_ok(_assess_surface(fit, names, "fit_approach2"), n, d, loss)


def _base_rows(N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None, fit: FitResult,  # noqa: N803
               drop_underfit: bool, base_mask: ArrayLike | None, joint: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows A, B, E, alpha and beta were fitted on (the base data set after any filter)."""
    n, d, loss, f, good = _as_arrays(N, D, L, fid)
    if base_mask is not None and not joint:
        rows = np.asarray(base_mask, dtype=bool).ravel()[good]
    else:  # the joint fit's A, B, E, alpha, beta are the law at the reference FID: judged on those rows
        rows = np.isclose(f, float(fit.law_kwargs.get("fid_ref", 0.0)))
    if drop_underfit:
        rows &= bartoldson_keep_mask(n, d, f)
    return n[rows], d[rows], loss[rows]


def _fit_approach2(N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None, *, reference_fid: float | None,
                   base_mask: ArrayLike | None, joint: bool, drop_underfit: bool,
                   grid: Mapping[str, Sequence[float]] | None, quality_grid: Mapping[str, Sequence[float]] | None,
                   bootstrap: int, seed: int, options: FitOptions | None) -> FitResult:
    opts = options or FitOptions()
    n, d, loss, f, good = _as_arrays(N, D, L, fid)
    if drop_underfit:
        keep = bartoldson_keep_mask(n, d, f)
        n, d, loss, f = n[keep], d[keep], loss[keep], f[keep]
    if base_mask is not None:
        base_rows = np.asarray(base_mask, dtype=bool).ravel()
        if base_rows.shape != good.shape:
            raise ScalingError(f"base_mask has {base_rows.size} entries for {good.size} runs")
        base_rows = base_rows[good]
        if drop_underfit:
            raise ScalingError("give either base_mask or drop_underfit, not both (filter the rows yourself)")
        fid_ref = float(np.median(f[base_rows])) if base_rows.any() else 0.0
    else:
        fid_ref = _default_reference(f) if reference_fid is None else float(reference_fid)
        base_rows = np.isclose(f, fid_ref)
    n_base = int(base_rows.sum())
    shift = np.log1p(f) - np.log1p(fid_ref)
    if joint:
        base_rows = np.ones_like(base_rows)
        if len(n) < 8 or np.ptp(shift) == 0:  # seven parameters; eps and zeta need two FIDs to exist
            return _too_few("approach2", len(n), 8, fid_ref,
                            f"{len(n)} runs at {len(np.unique(np.round(f, 6)))} FID(s); the joint fit needs at "
                            f"least 8 runs (it fits 7 parameters) at two or more FIDs")
    if n_base < 5 and not joint:
        return _too_few("approach2", n_base, 5, fid_ref)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    runs = _LogRuns(log_n, log_d, log_l, shift)
    g = grid or APPROACH2_GRID
    names1 = ["a", "b", "e", "alpha", "beta"] + (["eps", "zeta"] if joint else [])
    full_grid = {**g, **(quality_grid or QUALITY_GRID)}
    free1 = [A2_NAMES.index(k) for k in names1]
    rows1 = base_rows
    obj1, res1 = _a2_stage(runs.rows(rows1), free1, np.zeros(7), grid_points(full_grid, names1), opts)
    theta = np.zeros(7)
    theta[free1] = res1.x
    stage = "all seven parameters at once" if joint else "stage 1"
    success, message, objective = res1.success, f"{stage}: {res1.message}", res1.f
    other = ~base_rows
    quality_fitted = joint
    if not joint and int(other.sum()) >= 3 and np.ptp(shift) > 0:  # more runs than its two parameters
        free2 = [A2_NAMES.index("eps"), A2_NAMES.index("zeta")]
        qg = quality_grid or QUALITY_GRID
        _, res2 = _a2_stage(runs.rows(other), free2, theta, grid_points(qg, ["eps", "zeta"]), opts)
        theta[free2] = res2.x
        success &= res2.success
        message += f"; stage 2: {res2.message}"
        objective = res1.f + res2.f
        quality_fitted = True
    elif not joint and other.any():
        message += (f"; eps and zeta not fitted (held at 0): {int(other.sum())} run(s) off the base data set, stage 2 "
                    "needs at least 3")
    all_obj = runs.objective(range(7), theta[None, :], None, opts.delta)
    lse, _ = all_obj.predict_log(theta[None, :])
    residuals = lse[0] - log_l
    status = STATUS_OK if success else STATUS_NOT_CONVERGED
    dead = _dead_terms(theta, log_n[base_rows], log_d[base_rows], loss[base_rows])
    if success and dead:
        status = STATUS_DEGENERATE
        message += (f"; not identified by these runs: {', '.join(dead)} (changes by less than {DEAD_TERM_SHARE:.0%} "
                    f"of the loss across the runs, or exponent not in (0, {MAX_PLAUSIBLE_EXPONENT:g}]); spread N and D wider. No "
                    "compute-optimal allocation should be derived from this fit")
    if bootstrap == 0:  # with a bootstrap, `_assess_surface` warns once with the data's verdict
        warn_status("fit_approach2", status, message)
    boot = None
    conditional: dict[str, tuple[float, float]] = {}
    if bootstrap > 0:
        boot = _bootstrap_approach2(runs, base_rows, theta, res1.top_x, free1, quality_fitted and not joint,
                                    bootstrap, seed, opts, fid_ref)
        if quality_fitted and not joint:
            conditional = _stage2_given_stage1(runs, base_rows, theta, bootstrap, seed, opts)
    return FitResult(
        law="approach2", params=_a2_params(theta, fid_ref), status=status, objective=float(objective),
        n_points=len(n), residuals=residuals, bootstrap=boot,
        metrics=FitMetrics(n_base=n_base, quality_fitted=quality_fitted, r2_log=_r2(log_l, lse[0]), n_starts=res1.n_starts,
                           log_centre=LogCentre(float(np.mean(log_n[base_rows])), float(np.mean(log_d[base_rows]))),
                           stage2_given_stage1=conditional or None),
        law_kwargs={"fid_ref": fid_ref}, message=message,
    )


def _default_reference(f: np.ndarray) -> float:
    values, counts = np.unique(np.round(f, 6), return_counts=True)
    return float(values[counts == counts.max()].min())


def _too_few(law: str, n: int, need: int, fid_ref: float = 0.0, message: str | None = None) -> FitResult:
    msg = message or f"{n} points in the base data set; the fit needs at least {need}"
    warn_status(f"fit_{law}", STATUS_TOO_FEW_POINTS, msg)
    return FitResult(law=law, params={}, status=STATUS_TOO_FEW_POINTS, objective=float("nan"), n_points=n,
                     law_kwargs={"fid_ref": fid_ref} if law == "approach2" else {}, message=msg)


def _bootstrap_approach2(runs: _LogRuns, base_rows: np.ndarray, theta: np.ndarray, top_x: np.ndarray,
                         free1: Sequence[int], two_stage: bool, n_resamples: int, seed: int, opts: FitOptions,
                         fid_ref: float) -> BootstrapResult:
    """Resample runs with replacement; refit stage 1 (and stage 2) per resample in one batch each."""
    weights = _resample_weights(len(runs.log_l), n_resamples, seed)
    w1 = weights * base_rows  # stage 1 sees the resampled base rows only
    k = min(len(top_x), 3)

    def make1(w_rows: np.ndarray) -> Approach2Objective:
        return runs.objective(free1, theta[None, :], w_rows, opts.delta)

    x1, _, conv1 = _batched_refit(make1, top_x[:k], w1, opts.max_iter)
    thetas = np.repeat(theta[None, :], n_resamples, axis=0)
    thetas[:, free1] = x1
    converged = conv1.copy()
    if two_stage:
        converged &= _refit_stage2(runs, thetas, weights * ~base_rows, opts)
    return _boot_result(np.array([list(_a2_params(t, fid_ref).values()) for t in thetas]),
                        ["A", "B", "E", "alpha", "beta", "eps", "zeta"], converged, n_resamples, seed)


def _stage2_given_stage1(runs: _LogRuns, base_rows: np.ndarray, theta: np.ndarray, n_resamples: int, seed: int,
                         opts: FitOptions) -> dict[str, tuple[float, float]]:
    """95 % bootstrap intervals of eps and zeta with stage 1 held at its fit (only the other data sets resampled).

    Set beside the full bootstrap (which refits stage 1 too), it says where the FID terms' width comes from: a
    narrow interval here means the other data sets pin eps and zeta down and the width is the base data
    set's uncertainty carried over, so more base runs (or seeds) help; a wide one, that the other data sets
    themselves are too few or too noisy.
    """
    weights = _resample_weights(len(runs.log_l), n_resamples, seed) * ~base_rows
    thetas = np.repeat(theta[None, :], n_resamples, axis=0)
    ok = _refit_stage2(runs, thetas, weights, opts)
    ok &= np.all(np.isfinite(thetas), axis=1)
    if ok.sum() < 20:  # too few refits for a 95 % interval
        return {}
    intervals = {name: np.percentile(thetas[ok, A2_NAMES.index(name)], [2.5, 97.5]) for name in ("eps", "zeta")}
    return {name: (float(lo), float(hi)) for name, (lo, hi) in intervals.items()}


def _refit_stage2(runs: _LogRuns, thetas: np.ndarray, weights: np.ndarray, opts: FitOptions) -> np.ndarray:
    """Refit eps and zeta of every row of ``thetas`` (in place) under its row of point weights, in
    memory-bounded batches; returns which rows converged."""
    free2 = [A2_NAMES.index("eps"), A2_NAMES.index("zeta")]
    converged = np.zeros(len(thetas), dtype=bool)
    for part in _chunks(len(thetas), len(runs.log_l)):
        obj = runs.objective(free2, thetas[part], weights[part], opts.delta)
        run = batched_lbfgs(obj, thetas[part][:, free2], max_iter=opts.max_iter)
        thetas[part, free2] = run.x
        converged[part] = run.converged
    return converged


def _boot_result(values: np.ndarray, names: Sequence[str], converged: np.ndarray, n_resamples: int, seed: int
                 ) -> BootstrapResult:
    ok = converged & np.all(np.isfinite(values), axis=1)
    return BootstrapResult(samples={k: values[ok, i] for i, k in enumerate(names)}, n_resamples=n_resamples,
                           n_failed=int((~ok).sum()), seed=seed)


DEAD_TERM_SHARE = 0.02
MAX_PLAUSIBLE_EXPONENT = 3.0


def _dead_terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, loss: np.ndarray) -> list[str]:
    """The A/N^alpha and B/D^beta terms that these runs do not identify.

    A term is unidentified when it changes by less than 2 % of the median loss across the runs (it
    cannot be told apart from the constant E, so its coefficient and exponent can take any value), when
    its exponent is not positive (the loss would rise with N or D), or when its exponent exceeds 3: a
    term that falls 8x per doubling of N or D acts as a step, not a power law (published fits have
    0.2-0.4: Hoffmann et al. 0.34/0.28, Bartoldson et al. 0.24/0.23). beta = 37 on a 3x3 digits grid
    was seen. The published Approach 2 law changes its N term by far more than 2 % of the loss over a
    decade of N, so real fits pass.
    """
    p = dict(zip(A2_NAMES, theta, strict=True))
    terms = {
        "A/N^alpha": (np.exp(p["a"] - p["alpha"] * log_n), p["alpha"]),
        "B/D^beta": (np.exp(p["b"] - p["beta"] * log_d), p["beta"]),
    }
    scale = DEAD_TERM_SHARE * float(np.median(loss)) if loss.size else 0.0
    return [name for name, (value, exponent) in terms.items()
            if value.size and (exponent > MAX_PLAUSIBLE_EXPONENT or exponent <= 0
                               or float(value.max() - value.min()) < scale)]


def fit_chinchilla(N: ArrayLike, D: ArrayLike, L: ArrayLike, *, drop_underfit: bool = False,
                   grid: Mapping[str, Sequence[float]] | None = None, bootstrap: int = 0, seed: int = 0,
                   options: FitOptions | None = None) -> FitResult:
    """Fit L = A/N^alpha + B/D^beta + E (Hoffmann et al. 2022 Approach 3; papers/001 App. F.2.1 settings).

    Same objective and grid as `fit_approach2` with no quality terms, and the same identifiability check.
    """
    fit = _fit_approach2(N, D, L, None, reference_fid=0.0, base_mask=None, joint=False, drop_underfit=drop_underfit,
                         grid=grid, quality_grid=None, bootstrap=bootstrap, seed=seed, options=options)
    params = {k: v for k, v in fit.params.items() if k not in ("eps", "zeta")}
    boot = fit.bootstrap
    if boot is not None:
        boot = BootstrapResult({k: v for k, v in boot.samples.items() if k in params}, boot.n_resamples,
                               boot.n_failed, boot.seed)
    out = FitResult(law="chinchilla", params=params, status=fit.status, objective=fit.objective,
                    n_points=fit.n_points, residuals=fit.residuals, bootstrap=boot, metrics=fit.metrics,
                    message=fit.message)
    n, d, loss = _base_rows(N, D, L, None, out, drop_underfit, None, False)
    return earn_ok(_assess_surface(out, list(params), "fit_chinchilla"), n, d, loss)


# --------------------------------------------------------------------------------------- Approach 3

_A3_BOUNDS = [(1e-12, None), (1e-12, None), (None, None), (1e-12, None), (-5.0, 5.0), (1e-4, 5.0), (1e-4, 10.0),
              (None, None)]


def fit_approach3(N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None = None,
                  *, drop_underfit: bool = False, grid: Mapping[str, Sequence[float]] | None = None, bootstrap: int = 0,
                  seed: int = 0, options: FitOptions | None = None) -> FitResult:
    """Fit Approach 3 (papers/001 Eq. 5, App. F.3.1) on all data sets at once.

    No log re-parameterisation (as in the paper); the grid is App. F.3.1's 648 starts. The objective is
    nearly flat in B (the paper's B never moved from its start), so B's interval is wide by nature.
    """
    opts = options or FitOptions()
    n, d, loss, f, _ = _as_arrays(N, D, L, fid)
    if drop_underfit:
        keep = bartoldson_keep_mask(n, d, f)
        n, d, loss, f = n[keep], d[keep], loss[keep], f[keep]
    if len(n) < 8:
        return _too_few("approach3", len(n), 8)
    obj = Approach3Objective(n, d, f, np.log(loss), None, opts.delta)
    res = multistart_minimize(obj, grid_points(grid or APPROACH3_GRID, A3_NAMES), bounds=_A3_BOUNDS,
                              prune_iter=opts.prune_iter, keep=opts.keep, max_iter=opts.max_iter,
                              n_polish=opts.n_polish)
    params = dict(zip(A3_NAMES, (float(v) for v in res.x), strict=True))
    pred, _ = obj.predict(res.x[None, :])
    residuals = np.log(pred[0]) - np.log(loss)
    status = STATUS_OK if res.success and np.isfinite(res.f) else STATUS_NOT_CONVERGED
    message = res.message
    negative = _negative_floors(params, f)
    if status == STATUS_OK and negative:
        status = STATUS_DEGENERATE
        message += (f"; the law's floor (the loss as N, D -> infinity) is negative at FID {negative}: a loss cannot "
                    "be, so the FID terms trade off against E outside the physical range. Nothing (ceilings, "
                    "FID-0 forecasts) should be derived from this fit; Approach 2 keeps E > 0 by construction")
    warn_status("fit_approach3", status, message)
    boot = None
    if bootstrap > 0:
        weights = _resample_weights(len(n), bootstrap, seed)
        k = min(len(res.top_x), 3)
        starts = np.vstack([res.x[None, :], res.top_x[1:k]])
        x, _, conv = _batched_refit(lambda w: Approach3Objective(n, d, f, np.log(loss), w, opts.delta), starts,
                                    weights, opts.max_iter)
        boot = _boot_result(x, A3_NAMES, conv, bootstrap, seed)
    out = FitResult(law="approach3", params=params, status=status, objective=float(res.f), n_points=len(n),
                    residuals=residuals, bootstrap=boot,
                    metrics=FitMetrics(r2_log=_r2(np.log(loss), np.log(pred[0])), n_starts=res.n_starts), message=message)
    return _assess_surface(out, list(params), "fit_approach3")


def _negative_floors(params: dict[str, float], fid: np.ndarray) -> str:
    """The FIDs (0 and each data set's) where Approach 3's floor E + log(1 + FID) eps + (Q FID)^kappa is < 0."""
    levels = np.unique(np.concatenate([[0.0], fid]))
    with np.errstate(all="ignore"):
        floors = (params["E"] + np.log1p(levels) * params["eps"]
                  + np.power(params["Q"] * levels, params["kappa"]))
    return ", ".join(f"{v:g}" for v, fl in zip(levels, floors, strict=True) if not fl >= 0)


def _r2(y: np.ndarray, y_hat: np.ndarray) -> float:
    ss_res = float(np.sum((y - y_hat) ** 2))
    ss_tot = float(np.sum((y - np.mean(y)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
