"""A saturating envelope: robust error = A * (FLOPs / 1e12)^-alpha + floor (issue 27 item 3).

papers/002's envelope law is a pure power law in accuracy, y = C * FLOPs^alpha: fine on its own
CIFAR-10 range (accuracies far below 1), but on a study that nears its ceiling it keeps rising past
every run and was capped at 100 % (R^2 0.69 on the quickstart). Writing the *error* as a power law
plus an irreducible floor gives the same power-law decay at small compute and a ceiling of
1 - floor, fitted on the same envelope points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from robustperf.scaling.bounded_laws import X_SCALE, SaturatingPowerLaw  # noqa: F401
from robustperf.scaling.envelope import envelope_points
from robustperf.scaling.fit_metrics import FitMetrics, Identifiability
from robustperf.scaling.result import (
    STATUS_NOT_CONVERGED,
    STATUS_OK,
    STATUS_POORLY_IDENTIFIED,
    STATUS_TOO_FEW_POINTS,
    BootstrapResult,
    FitResult,
    ScalingError,
)

FLOOR_AT_BOUND = 1e-6


def _fit(x: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, bool]:
    """(log A, alpha, floor) by least squares on the error, from a few starts; success flag.

    The floor stays within [0, the smallest error measured]: a ceiling (1 - floor) below a run that was
    measured would contradict that run.
    """
    lx = np.log(x / X_SCALE)
    floor_max = max(float(err.min()), 2 * FLOOR_AT_BOUND)
    best, ok = None, False
    for alpha0 in (0.1, 0.3, 1.0):
        for floor_share in (0.0, 0.5, 0.9):
            floor0 = floor_share * float(err.min())
            excess = np.maximum(err - floor0, 1e-6)
            log_a0 = float(np.mean(np.log(excess) + alpha0 * lx))

            def resid(p: np.ndarray) -> np.ndarray:
                return np.exp(p[0] - p[1] * lx) + p[2] - err

            res = least_squares(resid, [log_a0, alpha0, min(floor0, floor_max / 2)],
                                bounds=([-50.0, 1e-4, 0.0], [50.0, 5.0, floor_max]))
            if best is None or res.cost < best.cost:
                best, ok = res, bool(res.success)
    assert best is not None
    return best.x, ok



def _floor_at_bound(floor: float, boot: BootstrapResult | None, min_error: float = 1.0) -> str:
    """Why the floor sits at (or its interval against) one of its bounds, 0 or the smallest measured error, or ""."""
    if not floor > FLOOR_AT_BOUND:
        return f"{floor:.3g}, at its bound 0"
    if floor >= min_error * (1 - 1e-6) - FLOOR_AT_BOUND:
        return (f"{floor:.3g}, at its bound: the ceiling is the best run's accuracy ({1 - min_error:.3g}); the runs do "
                "not show saturation")
    if boot is not None and boot.samples["floor"].size:
        share = float(np.mean(~(boot.samples["floor"] > FLOOR_AT_BOUND)))
        if share >= 0.025:
            return f"its 95 % interval reaches its bound 0 ({share:.0%} of the resamples)"
    return ""


def fit_saturating_envelope(flops: ArrayLike, accuracy: ArrayLike, *, n_bins: int = 19, bootstrap: int = 0,
                            seed: int = 0) -> FitResult:
    """Fit robust error = A (FLOPs/1e12)^-alpha + floor to the best run per FLOPs bin.

    Returns:
        FitResult with law "saturating_power_law" (params A, alpha, floor), metrics r2 (accuracy units),
        the envelope indices and the x and y ranges of the envelope.
    """
    x = np.asarray(flops, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    if x.shape != acc.shape:
        raise ScalingError(f"flops and accuracy need the same length, got {x.shape} and {acc.shape}")
    keep = np.flatnonzero(np.isfinite(x) & np.isfinite(acc) & (x > 0))
    if keep.size and acc[keep].max() > 1.0:
        raise ScalingError("accuracies must be fractions in [0, 1]; if they are percentages, divide them by 100")
    idx = keep[envelope_points(x[keep], acc[keep], n_bins=n_bins, best="max")]
    if len(idx) < 4:
        return FitResult({}, STATUS_TOO_FEW_POINTS, float("nan"), len(idx), law="saturating_power_law",
                         message=f"{len(idx)} envelope points; a three-parameter law needs at least 4")
    xe, err = x[idx], 1.0 - acc[idx]
    p, ok = _fit(xe, err)
    law = SaturatingPowerLaw(float(np.exp(p[0])), float(p[1]), float(p[2]))
    resid = acc[idx] - law(xe)
    ss_tot = float(np.sum((acc[idx] - acc[idx].mean()) ** 2))
    boot = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        rows = [r for r in rng.integers(0, len(idx), size=(bootstrap, len(idx))) if np.unique(xe[r]).size >= 3]
        fits = np.array([_fit(xe[r], err[r])[0] for r in rows])
        samples = {"A": np.exp(fits[:, 0]), "alpha": fits[:, 1], "floor": fits[:, 2]} if len(rows) else {
            "A": np.zeros(0), "alpha": np.zeros(0), "floor": np.zeros(0)}
        boot = BootstrapResult(samples, bootstrap, bootstrap - len(rows), seed)
    status, message = (STATUS_OK, "ok") if ok else (STATUS_NOT_CONVERGED, "least squares did not converge")
    at_bound = _floor_at_bound(law.floor, boot, float(err.min()))
    if ok and at_bound:  # the runs do not show where accuracy saturates: the ceiling is not identified
        status, message = STATUS_POORLY_IDENTIFIED, f"poorly identified: floor ({at_bound}); the ceiling is not known"
    return FitResult(params=law.params, status=status, message=message,
                     objective=float(np.sum(resid**2)), n_points=len(idx), residuals=resid, bootstrap=boot,
                     law="saturating_power_law",
                     metrics=FitMetrics(
                         identifiability=(Identifiability(checked=True, poorly_identified=("floor",),
                                                          reasons=(f"floor: {at_bound}",))
                                          if status == STATUS_POORLY_IDENTIFIED else None),
                         r2=1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan"),
                         envelope_indices=tuple(int(i) for i in idx), x_range=(float(xe.min()), float(xe.max())),
                         y_range=(float(acc[idx].min()), float(acc[idx].max()))))
