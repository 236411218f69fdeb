"""Single-step methods beyond fast AT: free adversarial training and FGSM without projection.

- **Free AT** (Shafahi et al. 2019, "Adversarial Training for Free!", Algorithm 1): every minibatch is
  replayed ``m`` times. Each replay is one forward and one backward pass on ``x + delta``; that backward
  gives both the weight gradient (the loop applies it: one optimiser step per replay) and the input
  gradient, with which the perturbation takes one sign step of size eps and is clipped to the eps ball.
  ``delta`` is carried from replay to replay and from minibatch to minibatch (it is never reset). To keep
  the paper's accounting the run is ``m`` times shorter in data: ``optim.epochs = E`` passes over the data
  ``E / m`` times, which is ``E x batches`` weight updates, as many as natural training for E epochs.
- **FGSM without projection** (de Jorge et al. 2022, "Make Some Noise", N-FGSM; the variant papers/004
  cites against catastrophic overfitting): noise ``eta ~ U(-k eps, k eps)`` with k = 2, one FGSM step of
  size eps from ``x + eta``, and no clipping back into the eps ball (only into [0, 1]). The training point
  can lie up to (k + 1) eps from x; the evaluation threat model is still eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustperf.training.methods.adversarial import PGDAT, PGDATSettings
from robustperf.training.methods.base import (
    AttackDone,
    MethodConfigError,
    MethodSettings,
    StepOutput,
    TrainingMethod,
    accuracy,
    attack_mode,
    cross_entropy,
)


@dataclass(frozen=True)
class FreeATSettings(MethodSettings):
    """Free AT. ``n_steps``/``step_size``/``random_start`` of the attack config are not used.

    Attributes:
        replays: m, times each minibatch is replayed (Shafahi et al. use m = 8 on CIFAR-10, 4 on ImageNet).
        step_ratio: the perturbation's step per replay as a multiple of eps (the paper: eps, i.e. 1.0).
    """

    replays: int = 8
    step_ratio: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.replays < 1:
            raise MethodConfigError(f"free_at needs method.kwargs.replays >= 1, got {self.replays}")
        if self.norm != "linf":
            raise MethodConfigError("free_at is an L-inf method (sign steps, box clipping): set method.attack.norm=linf")


class FreeAT(TrainingMethod):
    """``loss = CE(f(clip01(x + delta)), y)``; `after_backward` moves ``delta`` with the input gradient that
    the loop's backward pass left on it, so the attack costs no pass of its own (3F per replay)."""

    settings: FreeATSettings

    def __init__(self, settings: MethodSettings, generator: torch.Generator | None = None) -> None:
        super().__init__(settings, generator)
        self._delta: Tensor | None = None  # (B, C, H, W), carried across replays and minibatches
        self._leaf: Tensor | None = None  # this replay's slice of delta, whose .grad the backward fills

    @property
    def replays(self) -> int:
        return self.settings.replays

    def _carried(self, x: Tensor) -> Tensor:
        """The perturbation for this batch: the first ``len(x)`` rows of the carried one (zeros at first,
        as in the reference code, whose global noise has the size of a full batch)."""
        d = self._delta
        if d is None or d.shape[1:] != x.shape[1:]:
            d = torch.zeros_like(x, dtype=torch.float32)
        d = d.to(x.device)
        if d.shape[0] < x.shape[0]:
            d = torch.cat([d, d.new_zeros((x.shape[0] - d.shape[0], *x.shape[1:]))])
        self._delta = d
        return d[: x.shape[0]]

    def step(self, model: nn.Module, x: Tensor, y: Tensor, *, on_attack_done: AttackDone = None) -> StepOutput:
        if on_attack_done is not None:
            on_attack_done()  # no separate inner maximisation: the attack rides on the weight backward
        leaf = self._carried(x).clone().requires_grad_(True)
        adv_logits = model((x + leaf).clamp(0.0, 1.0))
        loss = cross_entropy(adv_logits, y, self.settings.label_smoothing)
        self._leaf = leaf
        metrics = {"adv_acc": accuracy(adv_logits, y), "loss": loss.detach()}
        return StepOutput(loss=loss, logits=None, adv_logits=adv_logits, metrics=metrics)

    def after_backward(self, model: nn.Module) -> None:
        """One FGSM step on the carried perturbation with this replay's input gradient, clipped to eps."""
        leaf, self._leaf = self._leaf, None
        if leaf is None or leaf.grad is None or self._delta is None:
            return
        s = self.settings
        with torch.no_grad():
            moved = (leaf + s.step_ratio * s.eps * leaf.grad.sign()).clamp_(-s.eps, s.eps)
            self._delta[: leaf.shape[0]] = moved

    def state_dict(self) -> dict[str, Any]:
        """The attack RNG and the carried perturbation (an exact resume continues from it)."""
        state = super().state_dict()
        state["delta"] = None if self._delta is None else self._delta.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._delta = state.get("delta")  # moved to the batch's device at the next step


@dataclass(frozen=True)
class NoProjFGSMSettings(PGDATSettings):
    """FGSM training without projection (N-FGSM). ``n_steps``/``step_size``/``random_start`` are not used.

    Attributes:
        noise_ratio: k, the noise is uniform in [-k eps, k eps] (de Jorge et al. 2022: k = 2).
        step_ratio: the FGSM step as a multiple of eps (de Jorge et al. 2022: 1.0).
    """

    noise_ratio: float = 2.0
    step_ratio: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise_ratio < 0 or self.step_ratio <= 0:
            raise MethodConfigError("fgsm_noproj needs method.kwargs.noise_ratio >= 0 and step_ratio > 0")
        if self.norm != "linf":
            raise MethodConfigError("fgsm_noproj takes sign steps: set method.attack.norm=linf")


class NoProjFGSM(PGDAT):
    """``x_adv = clip01(x + eta + alpha sign(grad_x CE(f(x + eta), y)))``, then CE on x_adv (5F per image)."""

    settings: NoProjFGSMSettings

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        s = self.settings
        u = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=torch.float32)
        noisy = (x + (2.0 * u - 1.0) * s.noise_ratio * s.eps).clamp(0.0, 1.0).detach().requires_grad_(True)
        with attack_mode(model, s.bn_mode) as inner:
            loss = cross_entropy(inner(noisy), y)
            (grad,) = torch.autograd.grad(loss, noisy)
        x_adv = (noisy + s.step_ratio * s.eps * grad.sign()).clamp(0.0, 1.0)  # no projection onto the eps ball
        return x_adv.detach(), {}
