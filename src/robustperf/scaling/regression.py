"""Loss-to-accuracy regression (papers/001 App. F.2.2): accuracy = slope * loss + intercept."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.fit_metrics import FitMetrics
from robustperf.scaling.identify import assess
from robustperf.scaling.result import STATUS_OK, BootstrapResult, FitResult, ScalingError


def bootstrap_line(x: np.ndarray, y: np.ndarray, line: Callable[[np.ndarray, np.ndarray], tuple[float, float]],
                   bootstrap: int, seed: int) -> BootstrapResult | None:
    """Refit a two-parameter line (``line(x, y) -> (slope, intercept)``) on `bootstrap` resamples of the points;
    resamples whose x values are all equal are skipped (counted as failed). None when `bootstrap` is 0."""
    if bootstrap <= 0:
        return None
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(x), size=(bootstrap, len(x)))
    fits = np.array([line(x[r], y[r]) for r in rows if np.ptp(x[r]) > 0]).reshape(-1, 2)
    return BootstrapResult({"slope": fits[:, 0], "intercept": fits[:, 1]}, bootstrap, bootstrap - len(fits), seed)


def fit_loss_to_accuracy(loss: ArrayLike, accuracy: ArrayLike, *, run_id: ArrayLike | None = None,
                         bootstrap: int = 0, seed: int = 0) -> FitResult:
    """Least-squares line from adversarial loss to robust accuracy.

    Args:
        loss: adversarial test loss per observation.
        accuracy: robust accuracy per observation (fraction, as in the paper's -0.7496 L + 1.2575).
        run_id: if given, keep each run's minimum-loss observation only (the paper's restriction).
        bootstrap: resamples for intervals of slope and intercept.
        seed: resampling seed.

    Returns:
        FitResult with law "linear" (params slope, intercept) and metrics r2.
    """
    x = np.asarray(loss, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.shape != y.shape:
        raise ScalingError(f"loss and accuracy need the same length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    if run_id is not None:
        rid = np.asarray(run_id)
        keep = np.zeros_like(ok)
        for r in np.unique(rid[ok]):
            members = np.flatnonzero(ok & (rid == r))
            keep[members[np.argmin(x[members])]] = True
        ok = keep
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0:
        raise ScalingError(f"the regression needs at least 3 observations with distinct losses, got {len(x)}")
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    boot = bootstrap_line(x, y, lambda xs, ys: tuple(np.polyfit(xs, ys, 1)), bootstrap, seed)
    fit = FitResult(params={"slope": float(slope), "intercept": float(intercept)}, status=STATUS_OK,
                    objective=float(np.sum(resid**2)), n_points=len(x), residuals=resid, bootstrap=boot,
                    law="linear", metrics=FitMetrics(r2=r2, x_range=(float(x.min()), float(x.max()))))
    return assess(fit, what="fit_loss_to_accuracy")
