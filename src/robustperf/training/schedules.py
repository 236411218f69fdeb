"""Learning-rate schedules as pure functions of the iteration, stepped every iteration.

A schedule is a multiplier of the base learning rate. Keeping it a pure function of the global step
makes resume exact: the only state is the step counter, which the checkpoint stores anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ScheduleError(ValueError):
    """An unknown schedule or impossible milestones; the message names the fix."""


@dataclass(frozen=True)
class LRSchedule:
    """Multiplier of the base learning rate at each iteration.

    Attributes:
        name: "constant", "cosine", "onecycle" or "piecewise".
        total_steps: iterations of the whole run.
        warmup_steps: linear warm-up from ~0 to 1 (cosine, constant, piecewise).
        milestones: piecewise: fractions of training at which the rate is divided by 10.
    """

    name: str
    total_steps: int
    warmup_steps: int = 0
    milestones: tuple[float, ...] = (0.5, 0.75)

    def __post_init__(self) -> None:
        if self.name not in ("constant", "cosine", "onecycle", "piecewise"):
            raise ScheduleError(f"unknown schedule {self.name!r}; use constant, cosine, onecycle or piecewise")
        if self.total_steps < 1:
            raise ScheduleError("a schedule needs total_steps >= 1")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ScheduleError(f"optim.milestones must be fractions in (0, 1), got {self.milestones}")

    def factor(self, step: int) -> float:
        """The multiplier for iteration `step` (0-based)."""
        if self.name == "onecycle":
            return _onecycle(step, self.total_steps, self.warmup_steps)
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.name == "constant":
            return 1.0
        if self.name == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        fraction = step / self.total_steps
        return 0.1 ** sum(fraction >= m for m in self.milestones)


def _onecycle(step: int, total: int, warmup: int) -> float:
    """Triangular one-cycle (Wong et al. 2020's cyclic rate): up linearly, then down to zero.

    The peak sits at the warm-up end, or at 40 % of training when no warm-up is configured.
    """
    peak = warmup if warmup > 0 else max(1, int(0.4 * total))
    if step < peak:
        return (step + 1) / peak
    return max(0.0, (total - step) / max(1, total - peak))
