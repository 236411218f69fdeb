"""A bounded, monotone map from adversarial loss to robust accuracy: logit(accuracy) = intercept + slope * loss.

The paper's map (papers/001 App. F.2.2) is a straight line, fitted there on losses that already span
the accuracies it is used at. Fitted on a small study and applied at a forecast loss below every
observed loss, a straight line leaves [0, 1] (issue 27: 1.523 - 0.679 x loss forecast 95 % where the
largest run measured 88 %). A line in logit space keeps the same two parameters, is monotone in the
loss (slope < 0), and can never forecast 100 %: it saturates as accuracies do.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from robustperf.scaling.bounded_laws import LOGIT_CLIP, AccuracyMap, LogitLinearMap, expit, logit  # noqa: F401
from robustperf.scaling.fit_metrics import FitMetrics
from robustperf.scaling.regression import bootstrap_line
from robustperf.scaling.result import STATUS_FAILED, STATUS_OK, FitResult, ScalingError


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) minimising squared accuracy errors, started from least squares in logit space.

    Squares are taken in accuracy units, not logit units: a run near chance (accuracy ~0) has a huge,
    noise-dominated logit that would otherwise pull the whole map.
    """
    slope0, intercept0 = np.polyfit(x, logit(y), 1)
    res = least_squares(lambda p: expit(p[1] + p[0] * x) - y, x0=[slope0, intercept0], method="lm")
    slope, intercept = res.x if res.success and np.all(np.isfinite(res.x)) else (slope0, intercept0)
    return float(slope), float(intercept)


def fit_logit_loss_to_accuracy(loss: ArrayLike, accuracy: ArrayLike, *, bootstrap: int = 0,
                               seed: int = 0) -> FitResult:
    """Least squares of accuracy on expit(intercept + slope * loss), with a pairs bootstrap of both parameters.

    Args:
        loss: adversarial loss per run.
        accuracy: robust accuracy per run, a fraction (percentages are refused: divide by 100).
        bootstrap: resamples of the runs for intervals (and for the forecast intervals that use the map).
        seed: resampling seed.

    Returns:
        FitResult with law "logit_linear" (params slope, intercept) and metrics x_range (the losses it
        was fitted on: outside them a forecast is an extrapolation), y_range, r2 (in accuracy units).
    """
    x = np.asarray(loss, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.shape != y.shape:
        raise ScalingError(f"loss and accuracy need the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if y.size and (y.max() > 1.0 or y.min() < 0.0):
        raise ScalingError(f"accuracies must be fractions in [0, 1], got {y.min():.4g}..{y.max():.4g}; "
                           "if they are percentages, divide them by 100")
    if len(x) < 3 or np.ptp(x) == 0:
        raise ScalingError(f"the map needs at least 3 runs with distinct losses, got {len(x)}")
    slope, intercept = _line(x, y)
    law = LogitLinearMap(slope, intercept)
    resid = y - law(x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    boot = bootstrap_line(x, y, _line, bootstrap, seed)
    status = STATUS_OK
    message = "ok"
    if not slope < 0:
        status, message = STATUS_FAILED, f"slope {slope:.3g} >= 0: accuracy does not fall as the loss rises"
    return FitResult(params={"slope": slope, "intercept": intercept}, status=status, objective=float(np.sum(resid**2)),
                     n_points=len(x), residuals=resid, bootstrap=boot, law="logit_linear", message=message,
                     metrics=FitMetrics(r2=r2, x_range=(float(x.min()), float(x.max())),
                                        y_range=(float(y.min()), float(y.max()))))
