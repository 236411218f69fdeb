"""Pareto fronts over runs: e.g. clean accuracy and robust accuracy (maximise) vs cost (minimise)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustperf.scaling.result import ScalingError


def pareto_mask(values: np.ndarray, senses: Sequence[int]) -> np.ndarray:
    """Rows of ``values`` (n, k) that no other row dominates; ``senses`` is +1 to maximise, -1 to minimise.

    A row dominates another if it is at least as good in every column and better in one. Rows with a
    missing value are never on the front.
    """
    v = np.asarray(values, dtype=float) * np.asarray(senses, dtype=float)  # now: larger is better
    finite = np.all(np.isfinite(v), axis=1)
    on_front = finite.copy()
    idx = np.flatnonzero(finite)
    sub = v[idx]
    for j, row in enumerate(sub):
        ge = np.all(sub >= row, axis=1)
        gt = np.any(sub > row, axis=1)
        if np.any(ge & gt):
            on_front[idx[j]] = False
    return on_front


def pareto_front(frame: Any, *, maximize: Sequence[str] = (), minimize: Sequence[str] = ()) -> Any:
    """The non-dominated rows of a DataFrame, sorted by the first ``minimize`` (else ``maximize``) column.

    Example:
        >>> pareto_front(runs, maximize=["final.clean_acc", "final.robust_acc"],
        ...              minimize=["cost.train_flops"])  # doctest: +SKIP
    """
    cols = [*maximize, *minimize]
    if not cols:
        raise ScalingError("name at least one column to maximize or minimize")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ScalingError(f"columns {missing} not in the table; available: {sorted(map(str, frame.columns))}")
    values = frame[cols].apply(lambda s: s.astype(float)).to_numpy()
    mask = pareto_mask(values, [1] * len(maximize) + [-1] * len(minimize))
    front = frame[mask]
    key = minimize[0] if minimize else maximize[0]
    return front.sort_values(key)
