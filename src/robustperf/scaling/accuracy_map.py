"""A bounded, monotone map from adversarial loss to robust accuracy: logit(accuracy) = intercept + slope * loss.

The paper's map (papers/001 App. F.2.2) is a straight line, fitted there on losses that already span
the accuracies it is used at. Fitted on a small study and applied at a forecast loss below every
observed loss, a straight line leaves [0, 1] (issue 27: 1.523 - 0.679 x loss forecast 95 % where the
largest run measured 88 %). A line in logit space keeps the same two parameters, is monotone in the
loss (slope < 0), and can never forecast 100 %: it saturates as accuracies do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from robustperf.scaling.laws import _LawBase
from robustperf.scaling.result import STATUS_FAILED, STATUS_OK, BootstrapResult, FitResult, ScalingError

# accuracies at exactly 0 or 1 have no logit; a run that scored 360/360 is pulled in by half an example
LOGIT_CLIP = 1e-3


class AccuracyMap(Protocol):
    """What a forecast needs from a loss -> accuracy map (a `LinearMap` or a `LogitLinearMap`)."""

    @property
    def slope(self) -> float: ...

    @property
    def intercept(self) -> float: ...

    def __call__(self, x: ArrayLike) -> Any: ...

    def inverse(self, y: ArrayLike) -> Any: ...


def logit(p: ArrayLike) -> Any:
    """log(p / (1 - p)), with p clipped to [LOGIT_CLIP, 1 - LOGIT_CLIP]."""
    q = np.clip(np.asarray(p, dtype=float), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(q) - np.log1p(-q)


def expit(z: ArrayLike) -> Any:
    """The inverse of `logit`, numerically stable for large |z|."""
    z = np.asarray(z, dtype=float)
    return np.exp(-np.logaddexp(0.0, -z))


@dataclass(frozen=True)
class LogitLinearMap(_LawBase):
    """accuracy = 1 / (1 + exp(-(intercept + slope * loss))): bounded in (0, 1), monotone in the loss."""

    slope: float
    intercept: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("slope", "intercept")

    def __call__(self, x: ArrayLike) -> Any:
        out = expit(self.intercept + self.slope * np.asarray(x, dtype=float))
        return float(out) if out.ndim == 0 else out

    def inverse(self, y: ArrayLike) -> Any:
        """The loss at which the map gives accuracy ``y`` (a fraction in (0, 1))."""
        y = np.asarray(y, dtype=float)
        if np.any((y <= 0) | (y >= 1)):
            raise ScalingError("a logit map reaches only accuracies strictly between 0 and 1")
        out = (np.log(y) - np.log1p(-y) - self.intercept) / self.slope
        return float(out) if out.ndim == 0 else out


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
    boot = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(x), size=(bootstrap, len(x)))
        fits = np.array([_line(x[r], y[r]) for r in rows if np.ptp(x[r]) > 0])
        boot = BootstrapResult({"slope": fits[:, 0], "intercept": fits[:, 1]}, bootstrap, bootstrap - len(fits),
                               seed)
    status = STATUS_OK
    message = "ok"
    if not slope < 0:
        status, message = STATUS_FAILED, f"slope {slope:.3g} >= 0: accuracy does not fall as the loss rises"
    return FitResult(params={"slope": slope, "intercept": intercept}, status=status, objective=float(np.sum(resid**2)),
                     n_points=len(x), residuals=resid, bootstrap=boot, law="logit_linear", message=message,
                     metrics={"r2": r2, "x_range": [float(x.min()), float(x.max())],
                              "y_range": [float(y.min()), float(y.max())]})
