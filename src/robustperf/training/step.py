"""One optimisation step of any method: the body of the training loop (also run by the throughput benchmark
and, through its phase hook, by the overhead profiler)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from robustperf.training.ema import EMA
from robustperf.training.methods import StepOutput, TrainingMethod
from robustperf.training.optim import set_lr


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast on the device when ``precision == "bf16"`` (a no-op context for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# A phase hook: called with a phase name, returns the context the phase runs in (e.g. a profiler range).
PhaseHook = Callable[[str], AbstractContextManager[Any]]
# "attack": inside "update", from the step's start until the method reports its inner maximisation done
# (``on_attack_done``; a method that never does has its whole step here);
# "update": the method's step (attack + loss) and its backward (+ AWP's restore, gradient clipping);
# "optimizer": the learning rate, the optimiser step and the EMA update.
PHASES = ("attack", "update", "optimizer")


def _no_phase(name: str) -> AbstractContextManager[Any]:
    return nullcontext()


class StepRunner:
    """``method.step`` (attack + loss) under autocast -> ``backward`` -> ``method.after_backward`` (AWP) ->
    gradient clipping -> learning rate -> optimiser step -> EMA update; ``method.replays`` times per batch
    (free AT replays each minibatch m times, one optimiser step each; every other method once).

    A ``phase`` hook passed to a call runs each update's `PHASES` inside the contexts it returns, so a
    profiler can attribute time to them (`robustperf.training.overhead`) without a copy of the step.
    """

    def __init__(
        self,
        method: TrainingMethod,
        model: nn.Module,
        raw: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        ema: EMA | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        grad_clip: float | None = None,
    ) -> None:
        self.method, self.model, self.raw, self.optimizer, self.ema = method, model, raw, optimizer, ema
        self.precision, self.channels_last, self.grad_clip = precision, channels_last, grad_clip
        self.device = next(raw.parameters()).device

    def __call__(self, x: Tensor, y: Tensor, lr: float, *, phase: PhaseHook | None = None) -> StepOutput:
        """One minibatch: the output of its one update, or the mean loss and metrics of its replays.

        Args:
            x, y: the minibatch.
            lr: the learning rate of this step.
            phase: called with each phase's name around it (None: no hook).
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        replays = self.method.replays
        if replays == 1:
            return self._update(x, y, lr, phase)
        losses: list[Tensor] = []
        metrics: dict[str, list[Tensor]] = {}
        for _ in range(replays):  # keep only detached numbers: each replay's graph is freed by its backward
            out = self._update(x, y, lr, phase)
            losses.append(out.loss.detach().float())
            for key, value in out.metrics.items():
                metrics.setdefault(key, []).append(value.detach().float())
        means = {key: torch.stack(values).mean() for key, values in metrics.items()}
        return StepOutput(loss=torch.stack(losses).mean(), logits=None, adv_logits=None, metrics=means)

    def _update(self, x: Tensor, y: Tensor, lr: float, hook: PhaseHook | None) -> StepOutput:
        phase = hook or _no_phase
        with phase("update"):
            with ExitStack() as attack:  # closed by the method when its inner maximisation ends, else here
                attack.enter_context(phase("attack"))
                # without a hook the method is called as it always was (a plug-in may not take on_attack_done)
                marks = {} if hook is None else {"on_attack_done": attack.close}
                with autocast(self.device, self.precision):
                    out = self.method.step(self.model, x, y, **marks)
            self.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            self.method.after_backward(self.model)
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.raw.parameters(), self.grad_clip)
        with phase("optimizer"):
            set_lr(self.optimizer, lr)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.raw)
        return out


__all__ = ["PHASES", "PhaseHook", "StepRunner", "autocast"]
