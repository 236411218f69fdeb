"""Extrapolation validation (Alabdulmohsin et al. 2022): fit on the smaller budgets, score the largest.

A law that fits well in-sample can still extrapolate badly; the honest test holds out the runs with the
most compute, fits on the rest, and reports the error on the held-out runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.result import FitResult, ScalingError


@dataclass(frozen=True)
class ExtrapolationResult:
    """Fit on all but the largest-compute runs, error on those.

    Attributes:
        fit: the fit on the training part.
        n_train, n_held_out: sizes of the two parts.
        threshold_flops: smallest held-out compute.
        rmse_log: root-mean-square error of log predictions on the held-out runs.
        mean_abs_rel_error: mean |prediction / truth - 1| on the held-out runs.
        predictions, truth: held-out values.
    """

    fit: FitResult
    n_train: int
    n_held_out: int
    threshold_flops: float
    rmse_log: float
    mean_abs_rel_error: float
    predictions: np.ndarray
    truth: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"n_train": self.n_train, "n_held_out": self.n_held_out, "threshold_flops": self.threshold_flops,
                "rmse_log": self.rmse_log, "mean_abs_rel_error": self.mean_abs_rel_error,
                "fit": self.fit.to_dict()}


def extrapolation_validation(flops: ArrayLike, y: ArrayLike,
                             fit_fn: Callable[[np.ndarray], FitResult],
                             predict_fn: Callable[[FitResult, np.ndarray], np.ndarray], *,
                             held_out_fraction: float = 0.2) -> ExtrapolationResult:
    """Hold out the ``held_out_fraction`` of runs with the most compute, fit on the rest, score them.

    Args:
        flops: compute per run (ordering key).
        y: the target per run (loss or accuracy, > 0).
        fit_fn: fits on a boolean training mask over the runs, returns a FitResult.
        predict_fn: (fit, held-out mask) -> predictions for the held-out runs.
        held_out_fraction: share of runs held out (at least one).

    Example:
        >>> extrapolation_validation(C, L, lambda m: fit_approach2(N[m], D[m], L[m], fid[m]),
        ...                          lambda f, m: f.to_law()(N[m], D[m], fid[m]))  # doctest: +SKIP
    """
    x = np.asarray(flops, dtype=float)
    target = np.asarray(y, dtype=float)
    if not 0 < held_out_fraction < 1:
        raise ScalingError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    n_held = max(1, int(round(held_out_fraction * len(x))))
    if len(x) - n_held < 3:
        raise ScalingError(f"{len(x)} runs are too few to hold out {n_held} and still fit")
    threshold = np.sort(x)[-n_held]
    held = x >= threshold
    fit = fit_fn(~held)
    pred = np.asarray(predict_fn(fit, held), dtype=float)
    truth = target[held]
    rmse = float(np.sqrt(np.mean((np.log(pred) - np.log(truth)) ** 2)))
    rel = float(np.mean(np.abs(pred / truth - 1.0)))
    return ExtrapolationResult(fit, int((~held).sum()), int(held.sum()), float(threshold), rmse, rel, pred, truth)
