"""The bounded laws of issue 27 as frozen objects: a logit loss -> accuracy map and a saturating envelope.

They live apart from their fitters (`accuracy_map.py`, `saturating.py`), which need `result.py`, so
that the law catalogue can register them without a circle of files (`result` builds laws through the
catalogue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.errors import ScalingError
from robustperf.scaling.laws import _LawBase

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


X_SCALE = 1e12  # FLOPs are divided by this so A is the excess error at 1 TFLOP


@dataclass(frozen=True)
class SaturatingPowerLaw(_LawBase):
    """accuracy = 1 - floor - A * (FLOPs / 1e12)^-alpha; the ceiling is 1 - floor."""

    A: float
    alpha: float
    floor: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("A", "alpha", "floor")

    def __call__(self, flops: ArrayLike) -> Any:
        x = np.asarray(flops, dtype=float) / X_SCALE
        out = 1.0 - self.floor - self.A * np.power(x, -self.alpha)
        return float(out) if out.ndim == 0 else out

    @property
    def ceiling(self) -> float:
        return 1.0 - self.floor

    def inverse(self, accuracy: float) -> float:
        """FLOPs where the law reaches ``accuracy`` (inf at or above the ceiling)."""
        excess = 1.0 - self.floor - accuracy
        if excess <= 0:
            return float("inf")
        return float(X_SCALE * (excess / self.A) ** (-1.0 / self.alpha))
