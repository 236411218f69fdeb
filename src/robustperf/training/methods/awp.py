"""Adversarial weight perturbation (Wu et al. 2020, "AWP"), wrapping PGD-AT or TRADES.

After the inner maximisation over inputs, the weights are perturbed once in the direction that
increases the method's own loss on the adversarial batch, layer by layer with a size relative to the
layer's norm: ``v_l = gamma * ||w_l|| * g_l / ||g_l||`` (Wu et al. 2020, Algorithm 1; their code takes
one SGD step on a proxy copy and rescales the difference, which is the same direction). The outer loss
is evaluated at ``w + v`` and its gradient is applied to ``w``: the loop calls `after_backward`, which
copies the saved weights back bit for bit before the optimiser step.

Only weights with ``ndim > 1`` (conv and linear kernels) are perturbed, as in the reference code. The
weight-gradient pass runs with BatchNorm on batch statistics and frozen running statistics, so it does
not update them (the reference code runs it on a throw-away proxy model for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustperf.training.methods.adversarial import AdversarialMethod
from robustperf.training.methods.base import AttackDone, StepOutput, TrainingMethod, attack_mode, unwrap


@dataclass(frozen=True)
class AWPSettings:
    """AWP on top of another method.

    Attributes:
        gamma: relative size of the weight perturbation (5e-3 for PGD-AT/TRADES in Wu et al. 2020).
        warmup_epochs: epochs of plain training before the perturbation is switched on.
    """

    gamma: float = 5e-3
    warmup_epochs: int = 0


class AWP(TrainingMethod):
    """Wraps an `AdversarialMethod`; ``step`` leaves the weights perturbed until `after_backward`."""

    def __init__(self, inner: AdversarialMethod, awp: AWPSettings) -> None:
        super().__init__(inner.settings, inner.generator)
        self.inner = inner
        self.awp = awp
        self._saved: list[tuple[nn.Parameter, Tensor]] = []

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.inner.set_epoch(epoch)

    def active(self) -> bool:
        return self.epoch >= self.awp.warmup_epochs

    def step(self, model: nn.Module, x: Tensor, y: Tensor, *, on_attack_done: AttackDone = None) -> StepOutput:
        x_adv, extra = self.inner.perturb(model, x, y)
        if on_attack_done is not None:
            on_attack_done()
        if self.active():
            self._perturb_weights(model, x, x_adv, y, extra)
        out = self.inner.outer_loss(model, x, x_adv, y, extra)
        out.metrics["awp_active"] = torch.tensor(float(self.active()))
        return out

    def _perturb_weights(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, extra: dict[str, Tensor]) -> None:
        module = unwrap(model)
        params = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
        with attack_mode(model, "batch_frozen") as inner_model:
            loss = self.inner.outer_loss(inner_model, x, x_adv, y, extra).loss
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        self._saved = []
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                if g is None:
                    continue
                self._saved.append((p, p.detach().clone()))
                scale = self.awp.gamma * p.norm() / (g.norm() + 1e-20)
                p.add_(g * scale)

    def after_backward(self, model: nn.Module) -> None:
        """Put back the unperturbed weights (exact copies, so DDP ranks stay identical)."""
        with torch.no_grad():
            for p, original in self._saved:
                p.copy_(original)
        self._saved = []
