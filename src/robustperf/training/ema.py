"""Exponential moving average of the weights ("weight averaging", Bartoldson et al. 2024: tau = 0.995)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """A frozen copy of the model whose weights follow ``ema <- decay * ema + (1 - decay) * w``.

    Early, random weights must not linger in the average. ``warmup_steps=None`` (the default) ramps the
    decay up as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates (the schedule of TensorFlow's
    ``ExponentialMovingAverage(num_updates=t)``), so the average spans about the last ``t / 10`` steps
    early on and reaches ``decay`` = 0.995 after ~1,800 steps; a run of 92 steps with a fixed 0.995 would
    still be 63 % its random initialisation. An integer keeps the older rule: the copy tracks the
    weights exactly (decay 0) for the first ``warmup_steps`` updates, then uses ``decay``.
    Buffers (BatchNorm running statistics) are copied.
    """

    def __init__(self, model: nn.Module, decay: float, warmup_steps: int | None = None) -> None:
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.n_updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.decay_at(self.n_updates)
        ema_params: list[torch.Tensor] = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.n_updates += 1

    def decay_at(self, n_updates: int) -> float:
        """The decay of the update after ``n_updates`` updates."""
        if self.warmup_steps is None:
            return min(self.decay, (1 + n_updates) / (10 + n_updates))
        return 0.0 if n_updates < self.warmup_steps else self.decay

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.n_updates = int(state["n_updates"])
