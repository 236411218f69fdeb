"""Frozen results of a fit: parameters, status, objective, residuals and bootstrap samples.

A fit never returns a failed optimum silently (DESIGN.md "Contracts"): an optimiser that did not
converge, or a parameter the data do not pin down, gives ``status != FitStatus.OK`` and a `FitWarning`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from robustperf.scaling.errors import ScalingError
from robustperf.scaling.fit_metrics import FitMetrics
from robustperf.scaling.law_registry import create_law


class FitStatus(str, Enum):
    """Why a fit can or cannot be used. Members compare equal to their strings (``FitStatus.OK == "ok"``).

    - OK: the optimiser converged and every parameter is identified (when a bootstrap was run).
    - NOT_CONVERGED: the optimiser stopped before a minimum; nothing may be derived from the parameters.
    - FAILED: no finite objective anywhere.
    - TOO_FEW_POINTS: fewer points than the law needs.
    - DEGENERATE: a term of the law does not change across the data (or has an implausible exponent), so
      its parameters can take any value; or the fit leaves the physical range (a negative loss floor).
    - POORLY_IDENTIFIED: converged, but the bootstrap spread of a parameter is too wide to trust it
      (the message names the parameter); N*, D* and forecasts derived from it must say so.
    """

    OK = "ok"
    NOT_CONVERGED = "not_converged"
    FAILED = "failed"
    TOO_FEW_POINTS = "too_few_points"
    DEGENERATE = "degenerate"
    POORLY_IDENTIFIED = "poorly_identified"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# Module-level names kept for the fitters' imports.
STATUS_OK = FitStatus.OK
STATUS_NOT_CONVERGED = FitStatus.NOT_CONVERGED
STATUS_FAILED = FitStatus.FAILED
STATUS_TOO_FEW_POINTS = FitStatus.TOO_FEW_POINTS
STATUS_DEGENERATE = FitStatus.DEGENERATE
STATUS_POORLY_IDENTIFIED = FitStatus.POORLY_IDENTIFIED


class FitWarning(UserWarning):
    """An optimisation ended without convergence; the result carries a non-"ok" status."""


def warn_status(what: str, status: FitStatus | str, message: str) -> None:
    """Emit a `FitWarning` for a non-ok fit (never silently return a failed optimum)."""
    if status != STATUS_OK:
        warnings.warn(f"{what}: status {str(status)!r}: {message}", FitWarning, stacklevel=3)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with an optional (low, high) bootstrap interval."""

    value: float
    low: float | None = None
    high: float | None = None
    level: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high, "level": self.level}

    def __str__(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.4g}"
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True)
class BootstrapResult:
    """Parameters refitted on resamples of the data (rows drawn with replacement).

    Attributes:
        samples: parameter name -> array of shape (n_ok,) with one value per successful resample.
        n_resamples: resamples attempted.
        n_failed: resamples whose refit did not converge (left out of ``samples``).
        seed: seed of the resampling generator.
    """

    samples: dict[str, np.ndarray]
    n_resamples: int
    n_failed: int
    seed: int

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of one parameter (or derived quantity) at ``level``; (nan, nan) when every
        resample failed (no samples)."""
        values = np.asarray(self.samples[name], dtype=float).ravel()
        if values.size == 0 or np.isnan(values).all():
            return float("nan"), float("nan")
        tail = 50.0 * (1.0 - level)
        lo, hi = np.nanpercentile(values, [tail, 100.0 - tail])
        return float(lo), float(hi)

    def rows(self) -> list[dict[str, float]]:
        """One parameter dict per successful resample (to rebuild laws)."""
        names = list(self.samples)
        n = len(next(iter(self.samples.values()))) if names else 0
        return [{k: float(self.samples[k][i]) for k in names} for i in range(n)]

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        return {
            "n_resamples": self.n_resamples,
            "n_failed": self.n_failed,
            "seed": self.seed,
            "level": level,
            "intervals": {k: list(self.interval(k, level)) for k in self.samples},
        }


@dataclass(frozen=True)
class FitResult:
    """What a fitter returns.

    Attributes:
        params: fitted parameters by name (paper symbols).
        status: a `FitStatus` (a plain string is converted): OK, or why not.
        objective: final value of the fitting objective (e.g. summed Huber loss).
        n_points: data points used.
        residuals: per-point residuals of the fit (in the space the objective uses).
        bootstrap: refits on resamples, if requested.
        law: registry name of the fitted law ("power_law", "approach2", ...), "" if it is not a law.
        metrics: `FitMetrics`, typed: goodness of fit, data ranges, identifiability (a dict in its saved form
            is read into one).
        law_kwargs: non-fitted fields the law needs (e.g. ``fid_ref``).
        message: optimiser message or notes.
    """

    params: dict[str, float]
    status: FitStatus
    objective: float
    n_points: int
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bootstrap: BootstrapResult | None = None
    law: str = ""
    metrics: FitMetrics = field(default_factory=FitMetrics)
    law_kwargs: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, FitMetrics):  # the dict form (a saved fit, or {**metrics, key: value})
            object.__setattr__(self, "metrics", FitMetrics.coerce(self.metrics))
        if not isinstance(self.status, FitStatus):
            try:
                object.__setattr__(self, "status", FitStatus(self.status))
            except ValueError:
                raise ScalingError(f"unknown fit status {self.status!r}; one of {[s.value for s in FitStatus]}") from None

    @property
    def ok(self) -> bool:
        return self.status == FitStatus.OK

    @property
    def usable(self) -> bool:
        """Converged, with every term present: quantities may be derived, labelled unless `ok`."""
        return self.status in (FitStatus.OK, FitStatus.POORLY_IDENTIFIED)

    @property
    def poorly_identified(self) -> list[str]:
        """Names of the parameters the bootstrap did not pin down (empty when unchecked or all identified)."""
        info = self.metrics.identifiability
        return list(info.names) if info is not None else []

    def caveat(self) -> str:
        """One line to print next to anything derived from this fit ("" for an ok fit)."""
        if self.ok:
            return ""
        if self.status == FitStatus.POORLY_IDENTIFIED:
            names = ", ".join(self.poorly_identified) or "some parameters"
            return f"fit poorly identified ({names}): treat as indicative only"
        return f"fit {self.status.value}: not a usable law"

    def to_law(self) -> Any:
        """The fitted law as a callable object (``robustperf.scaling.create_law``)."""
        if not self.law:
            raise ScalingError("this fit is not a registered law; nothing to build")
        return create_law(self.law, **self.params, **self.law_kwargs, source="fitted by robustperf")

    def bootstrap_laws(self) -> list[Any]:
        """One law per successful bootstrap resample (empty without a bootstrap)."""
        if self.bootstrap is None or not self.law:
            return []
        names = set(self.params)
        return [
            create_law(self.law, **{k: v for k, v in row.items() if k in names}, **self.law_kwargs,
                       source="bootstrap resample")
            for row in self.bootstrap.rows()
        ]

    def estimate(self, name: str, level: float = 0.95) -> Estimate:
        """A parameter with its bootstrap interval when there is one."""
        value = self.params[name]
        if self.bootstrap is None or name not in self.bootstrap.samples:
            return Estimate(value)
        lo, hi = self.bootstrap.interval(name, level)
        if not (np.isfinite(lo) and np.isfinite(hi)):  # every resample failed: no interval to give
            return Estimate(value)
        return Estimate(value, lo, hi, level)

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-ready summary (residuals and bootstrap samples are summarised, not dumped)."""
        return {
            "law": self.law,
            "params": dict(self.params),
            "law_kwargs": dict(self.law_kwargs),
            "status": self.status.value,
            "objective": self.objective,
            "n_points": self.n_points,
            "metrics": _jsonable(self.metrics.to_dict()),
            "message": self.message,
            "residual_rms": float(np.sqrt(np.mean(self.residuals**2))) if self.residuals.size else None,
            "bootstrap": self.bootstrap.to_dict(level) if self.bootstrap else None,
            "bootstrap_samples": {k: v.tolist() for k, v in self.bootstrap.samples.items()} if self.bootstrap else None,
        }

    def save(self, path: str | Path) -> Path:
        """Write `to_dict` as JSON; `load_fit` reads it back (with bootstrap samples)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2))
        return target


def load_fit(path: str | Path) -> FitResult:
    """Read a fit written by `FitResult.save` (residuals are not stored)."""
    data = json.loads(Path(path).read_text())
    boot = None
    if data.get("bootstrap_samples"):
        b = data["bootstrap"]
        boot = BootstrapResult(
            samples={k: np.asarray(v, dtype=float) for k, v in data["bootstrap_samples"].items()},
            n_resamples=int(b["n_resamples"]),
            n_failed=int(b["n_failed"]),
            seed=int(b["seed"]),
        )
    return FitResult(
        law=data["law"],
        params={k: float(v) for k, v in data["params"].items()},
        status=data["status"],
        objective=float(data["objective"]),
        n_points=int(data["n_points"]),
        bootstrap=boot,
        metrics=FitMetrics.coerce(data.get("metrics") or {}),
        law_kwargs=data.get("law_kwargs", {}),
        message=data.get("message", ""),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
