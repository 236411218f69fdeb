"""Standard (non-adversarial) training: cross entropy on clean images, 3F per image."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from robustperf.training.methods.base import (
    AttackDone,
    MethodSettings,
    StepOutput,
    TrainingMethod,
    accuracy,
    cross_entropy,
)


@dataclass(frozen=True)
class StandardSettings(MethodSettings):
    """Only ``label_smoothing`` is read; the attack fields are used by the per-epoch evaluation."""


class Standard(TrainingMethod):
    """``loss = CE(f(x), y)``."""

    settings: StandardSettings

    def step(self, model: nn.Module, x: Tensor, y: Tensor, *, on_attack_done: AttackDone = None) -> StepOutput:
        if on_attack_done is not None:
            on_attack_done()  # no inner maximisation
        logits = model(x)
        loss = cross_entropy(logits, y, self.settings.label_smoothing)
        return StepOutput(loss=loss, logits=logits, adv_logits=None, metrics={"clean_acc": accuracy(logits, y), "loss": loss.detach()})
