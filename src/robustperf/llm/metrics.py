"""Attack success rate and seed aggregation (papers/000 section 3 and App. E)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def attack_success_rate(correct_before: Sequence[bool], correct_after: Sequence[bool]) -> float | None:
    """Share of examples correct before the attack that are wrong after it (papers/000 section 3).

    Examples already misclassified before the attack are not counted at all. None if no example
    was correct before the attack (the rate is undefined).
    """
    if len(correct_before) != len(correct_after):
        raise ValueError(f"{len(correct_before)} before-flags but {len(correct_after)} after-flags")
    n_correct = sum(bool(b) for b in correct_before)
    if n_correct == 0:
        return None
    flipped = sum(bool(b) and not bool(a) for b, a in zip(correct_before, correct_after, strict=True))
    return flipped / n_correct


def min_median_max(values: Sequence[float | None]) -> dict[str, float | None]:
    """min/median/max over seeds (papers/000 plots shade min-max around the median); None values skipped."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}
