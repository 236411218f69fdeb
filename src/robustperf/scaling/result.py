"""Frozen results of a fit: parameters, status, objective, residuals and bootstrap samples.

A fit never returns a failed optimum silently (DESIGN.md "Contracts"): an optimiser that did not
converge gives ``status != "ok"`` and a `FitWarning`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATUS_OK = "ok"
STATUS_NOT_CONVERGED = "not_converged"
STATUS_FAILED = "failed"
STATUS_TOO_FEW_POINTS = "too_few_points"
STATUS_DEGENERATE = "degenerate"


class ScalingError(ValueError):
    """A user-facing problem with fitting inputs (too few points, bad columns, invalid values)."""


class FitWarning(UserWarning):
    """An optimisation ended without convergence; the result carries a non-"ok" status."""


def warn_status(what: str, status: str, message: str) -> None:
    """Emit a `FitWarning` for a non-ok fit (never silently return a failed optimum)."""
    if status != STATUS_OK:
        warnings.warn(f"{what}: status {status!r}: {message}", FitWarning, stacklevel=3)


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
        """Percentile interval of one parameter (or derived quantity) at ``level``."""
        values = self.samples[name]
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
        status: "ok", or why not ("not_converged", "failed", "too_few_points", "degenerate").
        objective: final value of the fitting objective (e.g. summed Huber loss).
        n_points: data points used.
        residuals: per-point residuals of the fit (in the space the objective uses).
        bootstrap: refits on resamples, if requested.
        law: registry name of the fitted law ("power_law", "approach2", ...), "" if it is not a law.
        metrics: goodness of fit and extras (r2, held-out error, ...).
        law_kwargs: non-fitted fields the law needs (e.g. ``fid_ref``).
        message: optimiser message or notes.
    """

    params: dict[str, float]
    status: str
    objective: float
    n_points: int
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bootstrap: BootstrapResult | None = None
    law: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    law_kwargs: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_law(self) -> Any:
        """The fitted law as a callable object (``robustperf.scaling.create_law``)."""
        from robustperf.scaling.laws import create_law

        if not self.law:
            raise ScalingError("this fit is not a registered law; nothing to build")
        return create_law(self.law, **self.params, **self.law_kwargs, source="fitted by robustperf")

    def bootstrap_laws(self) -> list[Any]:
        """One law per successful bootstrap resample (empty without a bootstrap)."""
        from robustperf.scaling.laws import create_law

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
        return Estimate(value, lo, hi, level)

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-ready summary (residuals and bootstrap samples are summarised, not dumped)."""
        return {
            "law": self.law,
            "params": dict(self.params),
            "law_kwargs": dict(self.law_kwargs),
            "status": self.status,
            "objective": self.objective,
            "n_points": self.n_points,
            "metrics": _jsonable(self.metrics),
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
        metrics=data.get("metrics", {}),
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
