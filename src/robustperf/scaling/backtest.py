"""Backtest the whole forecasting pipeline in the unit it reports: robust accuracy.

The loss law can extrapolate well in loss space while the accuracy it turns into does not (issue 27:
four held-out errors of -2.0, -2.7, -1.3 and -8.7 % in one direction passed a loss-space check). So the
backtest refits everything a forecast uses - the L(N, D) law, the loss -> accuracy map and the
compute-optimal allocation - on the runs below the top compute quantile (Alabdulmohsin et al. 2022,
REFERENCE.md s.4), predicts the held-out runs' robust accuracy, and reports:

- the error of each held-out run (predicted - observed, in accuracy points) and its sign pattern;
- a bias test: a one-sample t-test of the signed errors and an exact sign test;
- the compute-optimal forecast at the largest held-out budget against the best held-out run (what a
  headline forecast claims);
- a split-conformal widening: the held-out errors in logit units calibrate how far intervals must be
  widened so that runs like the held-out ones fall inside them.

A backtest that fails (large error, significant bias, or a bad compute-optimal forecast) means the
forecast is not the headline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from robustperf.scaling.accuracy_map import expit, fit_logit_loss_to_accuracy, logit
from robustperf.scaling.allocation import compute_optimal
from robustperf.scaling.forecasting import bounded_accuracy
from robustperf.scaling.regression import fit_loss_to_accuracy
from robustperf.scaling.result import FitResult, ScalingError

MapForm = Literal["logit", "linear"]
TOLERANCE = 0.05  # mean |error| above 5 accuracy points fails the backtest
BIAS_P = 0.05  # a t-test p-value below this fails it as biased
HELD_OUT_FRACTION = 0.2


@dataclass(frozen=True)
class Backtest:
    """The pipeline refitted below the top compute quantile, scored in accuracy on the held-out runs.

    Attributes:
        rows: one dict per held-out run (run_id, flops, N, D, loss, observed, predicted, error) and a last
            row with kind "compute-optimal" (the forecast at the largest held-out budget vs the best
            held-out run).
        n_train: runs the refit used; threshold_flops: smallest held-out compute.
        map_form: "logit" (bounded) or "linear" (the paper's straight line, clipped to [0, 1]).
        mean_abs_error, mean_error: over the held-out runs, in accuracy points (fractions).
        signs: "+" / "-" per held-out run (predicted above / below observed), by compute.
        bias_p: two-sided t-test p of mean error = 0 (nan under 3 runs); sign_p: exact sign test p.
        conformal_logit: half-width (logit units) that covers the held-out errors at ``conformal_level``.
        passed: the pipeline's forecasts may be the headline; reasons: why not, when it failed.
    """

    rows: list[dict[str, Any]]
    n_train: int
    threshold_flops: float
    map_form: str
    mean_abs_error: float
    mean_error: float
    signs: str
    bias_p: float
    sign_p: float
    conformal_logit: float
    conformal_level: float
    passed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def optimal_error(self) -> float | None:
        row = next((r for r in self.rows if r.get("kind") == "compute-optimal"), None)
        return None if row is None else float(row["error"])

    def bias_line(self) -> str:
        """'mean error -3.7 points (t-test p 0.04, signs - - - -, sign test p 0.12)'."""
        bias = "n/a (under 3 runs)" if math.isnan(self.bias_p) else f"{self.bias_p:.2g}"
        return (f"mean error {100 * self.mean_error:+.1f} points (t-test p {bias}; signs {self.signs}, "
                f"sign test p {self.sign_p:.2g})")

    def verdict(self) -> str:
        """One sentence for the summary."""
        n = len([r for r in self.rows if r.get("kind") == "run"])
        head = (f"Refitted on the {self.n_train} runs below the top {HELD_OUT_FRACTION:.0%} of compute, the whole "
                f"pipeline predicts the {n} held-out runs' robust accuracy with a mean absolute error of "
                f"{100 * self.mean_abs_error:.1f} points, {self.bias_line()}")
        if self.passed and math.isnan(self.bias_p):
            return head + f": the errors are within tolerance, but {n} held-out runs are too few to test for a bias."
        if self.passed:
            return head + ": the backtest passes."
        return head + f": the backtest fails ({'; '.join(self.reasons)}), so its forecasts are not the headline."

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "n_train": self.n_train, "threshold_flops": self.threshold_flops,
                "map_form": self.map_form, "mean_abs_error": self.mean_abs_error, "mean_error": self.mean_error,
                "signs": self.signs, "bias_p": None if math.isnan(self.bias_p) else self.bias_p,
                "sign_p": self.sign_p, "conformal_logit": self.conformal_logit,
                "conformal_level": self.conformal_level, "passed": self.passed, "reasons": self.reasons}


def held_out_mask(flops: np.ndarray, fraction: float = HELD_OUT_FRACTION) -> np.ndarray:
    """The runs in the top ``fraction`` of compute (at least two, so errors have a sign pattern)."""
    n_held = max(2, int(round(fraction * len(flops))))
    threshold = np.sort(flops)[-n_held]
    return flops >= threshold


def fit_accuracy_map(loss: np.ndarray, acc: np.ndarray, form: MapForm, bootstrap: int = 0, seed: int = 0
                     ) -> FitResult:
    """The loss -> accuracy map in the named form (both refuse percentages)."""
    if form == "logit":
        return fit_logit_loss_to_accuracy(loss, acc, bootstrap=bootstrap, seed=seed)
    if form == "linear":
        return fit_loss_to_accuracy(loss, acc, bootstrap=bootstrap, seed=seed)
    raise ScalingError(f"unknown map form {form!r}; use 'logit' or 'linear'")


def conformal_halfwidth(abs_residuals: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(half-width, level it achieves): the split-conformal quantile of |residuals|.

    With n calibration points the ceil((n + 1) level)-th smallest |residual| covers a new point with
    probability >= level; when that rank exceeds n (few held-out runs) the largest residual is used and
    the coverage it guarantees, n / (n + 1), is returned instead of ``level``.
    """
    r = np.sort(np.abs(np.asarray(abs_residuals, dtype=float)))
    n = r.size
    if n == 0:
        return math.nan, math.nan
    rank = math.ceil((n + 1) * level)
    if rank > n:
        return float(r[-1]), n / (n + 1)
    return float(r[rank - 1]), level


def backtest_pipeline(run_id: ArrayLike, flops: ArrayLike, N: ArrayLike, D: ArrayLike, loss: ArrayLike,  # noqa: N803
                      accuracy: ArrayLike, *, fit_surface: Callable[[np.ndarray, np.ndarray, np.ndarray], FitResult],
                      k: float, map_form: MapForm = "logit", tolerance: float = TOLERANCE,
                      held_out_fraction: float = HELD_OUT_FRACTION) -> Backtest:
    """Refit law + map on the smaller runs, predict the held-out runs' accuracy, test for bias.

    Args:
        run_id, flops, N, D, loss, accuracy: one entry per finished run (accuracy as a fraction).
        fit_surface: (N, D, loss) -> FitResult of an L(N, D) law (a point fit is enough).
        k: FLOPs per parameter per sample of these runs (C = k N D), for the compute-optimal row.
        map_form: the loss -> accuracy map to backtest.
        tolerance: largest mean |error| (accuracy fraction) that passes.
        held_out_fraction: share of runs held out, by compute.

    Raises:
        ScalingError: too few runs, or the refit below the threshold is not usable.
    """
    rid = np.asarray(run_id).astype(str)
    c, n, d, lo, acc = (np.asarray(a, dtype=float) for a in (flops, N, D, loss, accuracy))
    if acc.size and np.nanmax(acc) > 1.0:
        raise ScalingError("accuracies must be fractions in [0, 1]; if they are percentages, divide them by 100")
    held = held_out_mask(c, held_out_fraction)
    train = ~held
    if train.sum() < 4:
        raise ScalingError(f"{len(c)} runs are too few to hold out {int(held.sum())} and refit the pipeline")
    surface = fit_surface(n[train], d[train], lo[train])
    if not surface.usable:
        raise ScalingError(f"the L(N, D) refit below the top compute quantile is {surface.status.value}")
    law = surface.to_law()
    amap_fit = fit_accuracy_map(lo[train], acc[train], map_form)
    if not amap_fit.usable or not amap_fit.params["slope"] < 0:
        raise ScalingError(f"the loss -> accuracy refit is not usable ({amap_fit.message})")
    amap = amap_fit.to_law()
    order = np.flatnonzero(held)[np.argsort(c[held], kind="stable")]
    pred_loss = np.asarray(law(n[order], d[order]), dtype=float)
    pred = np.atleast_1d(bounded_accuracy(amap(pred_loss)))
    obs = acc[order]
    err = pred - obs
    rows = [{"kind": "run", "run_id": rid[i], "flops": float(c[i]), "N": float(n[i]), "D": float(d[i]),
             "loss": float(pl), "observed": float(o), "predicted": float(p), "error": float(e)}
            for i, pl, o, p, e in zip(order, pred_loss, obs, pred, err, strict=True)]
    best = order[int(np.argmax(obs))]
    budget = float(c[held].max())
    alloc = compute_optimal(law, budget, k=k)
    opt = float(bounded_accuracy(amap(alloc.loss)))
    rows.append({"kind": "compute-optimal", "run_id": rid[best], "flops": budget, "N": float(alloc.N),
                 "D": float(alloc.D), "loss": float(alloc.loss), "observed": float(acc[best]), "predicted": opt,
                 "error": opt - float(acc[best])})
    return _score(rows, err, pred, obs, int(train.sum()), float(c[held].min()), map_form, tolerance)


def _score(rows: list[dict[str, Any]], err: np.ndarray, pred: np.ndarray, obs: np.ndarray, n_train: int,
           threshold: float, map_form: str, tolerance: float) -> Backtest:
    n = err.size
    bias_p = math.nan
    if n >= 3 and np.std(err) > 0:
        bias_p = float(stats.ttest_1samp(err, 0.0).pvalue)
    n_pos = int((err > 0).sum())
    sign_p = float(stats.binomtest(n_pos, n, 0.5).pvalue) if n else math.nan
    signs = " ".join("+" if e > 0 else "-" if e < 0 else "0" for e in err)
    q, level = conformal_halfwidth(np.abs(logit(pred) - logit(obs)))
    mae, me = float(np.mean(np.abs(err))), float(np.mean(err))
    reasons = []
    if not mae <= tolerance:
        reasons.append(f"mean |error| {100 * mae:.1f} points > {100 * tolerance:.0f}")
    if not math.isnan(bias_p) and bias_p < BIAS_P:
        reasons.append(f"biased: every forecast leans {'high' if me > 0 else 'low'} (t-test p {bias_p:.2g})")
    opt_err = rows[-1]["error"]
    if not abs(opt_err) <= tolerance:
        reasons.append(f"the compute-optimal forecast misses the best held-out run by {100 * opt_err:+.1f} points")
    return Backtest(rows, n_train, threshold, map_form, mae, me, signs, bias_p, sign_p, q, level, not reasons,
                    reasons)


def widen(estimate: tuple[float, float | None, float | None], halfwidth_logit: float
          ) -> tuple[float, float, float]:
    """An accuracy (value, low, high) with its interval widened by a conformal half-width in logit units."""
    value, lo, hi = estimate
    lo = value if lo is None else lo
    hi = value if hi is None else hi
    q = halfwidth_logit if math.isfinite(halfwidth_logit) else 0.0
    return value, float(expit(logit(lo) - q)), float(expit(logit(hi) + q))
