"""Check before training that a study's grid can identify the L(N, D) law it will fit.

A scaling study fits L = A/N^alpha + B/D^beta + E to its runs. Whether alpha and beta can be told apart
from E is decided by the grid, not by the training: an axis with fewer than 3 distinct values, or one
spanning under 1.5x, leaves its exponent free (issue 11: D spanning 1.3x gave beta 1.02 for a planted
0.42), and an axis under one decade gives wide intervals. `check_design` reads the planned (N, D) of
every run - N by building each model on the meta device, D as training samples times epochs - and applies
those rules per axis, plus one across axes (N and D must not move together). Each problem comes with its
fix. Nothing is trained.

Passing the check is necessary, not sufficient: whether the fitted exponents come out identified also
depends on how noisy the losses are, which only the runs show (the fit's bootstrap then decides).
A rehearsal on a planted law was tried and dropped: with 2 % noise and terms a quarter of the floor it
called even a 5 x 5 grid over two decades per axis unidentified, so its verdict hinged on made-up noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustperf.sweep.study import StudyConfig, expand

log = logging.getLogger(__name__)

MIN_VALUES = 3
MIN_SPAN = 1.5  # below this an exponent is not identified at all
GOOD_SPAN = 10.0  # one decade: below this the intervals are wide
AXES = (("N", "alpha", "parameters N (model size: e.g. model.kwargs.width)"),
        ("D", "beta", "training samples D (data.n_train x optim.epochs)"))


@dataclass(frozen=True)
class DesignIssue:
    """One problem of a grid: which axis, which exponent it leaves free, and the fix."""

    axis: str
    exponent: str
    severity: str  # "error": the exponent cannot be identified; "warning": it will be loosely identified
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.severity}: {self.message}. Fix: {self.fix}"


@dataclass(frozen=True)
class DesignReport:
    """What the planned grid looks like and what it cannot identify."""

    n_runs: int
    values: dict[str, list[float]]
    issues: list[DesignIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No axis leaves an exponent unidentified (warnings allowed)."""
        return not any(i.severity == "error" for i in self.issues)

    def lines(self) -> list[str]:
        out = []
        for axis, _, label in AXES:
            vals = self.values.get(axis, [])
            if vals:
                out.append(f"{label}: {len(vals)} distinct values, {_si(min(vals))} .. {_si(max(vals))} "
                           f"(span {max(vals) / min(vals):.3g}x)")
        out += [i.line() for i in self.issues]
        if not self.issues:
            out.append("the grid passes the checks for both exponents of L(N, D) (the fit's bootstrap has the final say)")
        return out


def check_axes(N: Sequence[float], D: Sequence[float]) -> list[DesignIssue]:
    """The rule-based part: distinct values and span per axis, and whether N and D vary independently."""
    n, d = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    issues: list[DesignIssue] = []
    for (axis, exponent, label), values in zip(AXES, (n, d), strict=True):
        distinct = np.unique(values)
        span = float(distinct.max() / distinct.min()) if distinct.size and distinct.min() > 0 else 1.0
        if distinct.size < MIN_VALUES:
            issues.append(DesignIssue(axis, exponent, "error",
                                      f"{label} takes {distinct.size} distinct value(s); {exponent} needs at least "
                                      f"{MIN_VALUES}", f"give the grid at least {MIN_VALUES} values of {axis}"))
        elif span < MIN_SPAN:
            issues.append(DesignIssue(axis, exponent, "error",
                                      f"{label} spans only {span:.3g}x; {exponent} cannot be told apart from the floor E",
                                      f"spread {axis} over at least a decade (10x)"))
        elif span < GOOD_SPAN:
            issues.append(DesignIssue(axis, exponent, "warning",
                                      f"{label} spans {span:.3g}x, under one decade; {exponent} will have a wide interval",
                                      f"spread {axis} over at least a decade (10x)"))
    if n.size >= 3 and np.ptp(np.log(n)) > 0 and np.ptp(np.log(d)) > 0:
        r = float(np.corrcoef(np.log(n), np.log(d))[0, 1])
        if abs(r) > 0.95:
            issues.append(DesignIssue("N,D", "alpha, beta", "error",
                                      f"N and D move together across the runs (correlation {r:.2f}); the fit cannot "
                                      "separate alpha from beta", "cross the N and D values (a grid, not a diagonal)"))
    return issues


def planned_points(study: StudyConfig) -> list[tuple[str, float, float]]:
    """(run_id, N, D) of every planned run: models built on the meta device, D = training set x epochs."""
    import torch

    from robustperf.data import build_data
    from robustperf.models import count_parameters, create_model

    sizes: dict[str, tuple[int, int, tuple[int, ...]]] = {}
    points = []
    for cfg in expand(study):
        key = cfg.data.model_dump_json()
        if key not in sizes:
            bundle = build_data(cfg.data, seed=cfg.runtime.seed)
            sizes[key] = (len(bundle.train), bundle.num_classes, tuple(bundle.input_shape))
        n_train, classes, shape = sizes[key]
        kwargs: dict[str, Any] = dict(cfg.model.kwargs)
        with torch.device("meta"):  # no weights are allocated: counting a WRN-70-16 is free
            model = create_model(cfg.model.name, num_classes=classes, input_shape=shape, **kwargs)
        points.append((cfg.run_id, float(count_parameters(model)), float(n_train * cfg.optim.epochs)))
    return points


def check_design(study: StudyConfig) -> DesignReport:
    """Check that ``study``'s grid can identify alpha and beta of its L(N, D) law (see the module doc)."""
    points = planned_points(study)
    n = [p[1] for p in points]
    d = [p[2] for p in points]
    return DesignReport(len(points), {"N": sorted(set(n)), "D": sorted(set(d))}, check_axes(n, d))


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"
