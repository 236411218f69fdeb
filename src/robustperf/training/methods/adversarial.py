"""The adversarial methods: PGD-AT, TRADES, MART and fast AT, each split into perturb + outer loss.

Splitting the inner maximisation (`perturb`) from the outer loss (`outer_loss`) lets AWP wrap PGD-AT
and TRADES without re-implementing either. The inner maximisation comes from the attack registry: each
method builds ``create_attack("pgd", **threat.pgd_params())`` from its threat model (`AdversarialMethod.
threat`: the settings' one, with TRADES' KL loss or fast AT's single step) and calls its `inner_max`,
which differentiates w.r.t. the input only, so no parameter gradient is computed during the attack
(REFERENCE.md section 3: a PGD step costs 2F, not 3F), and draws the random start from the method's
generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustperf.attacks import create_attack
from robustperf.attacks.pgd import PGD
from robustperf.threat import ThreatModel
from robustperf.training.methods.base import (
    AttackDone,
    MethodSettings,
    StepOutput,
    TrainingMethod,
    accuracy,
    attack_mode,
    cross_entropy,
    trades_kl,
)


def inner_attack(threat: ThreatModel) -> PGD:
    """The registry's PGD with a threat model's settings, for its `PGD.inner_max`."""
    attack = create_attack("pgd", **threat.pgd_params())
    assert isinstance(attack, PGD)  # "pgd" is registered by robustperf.attacks.pgd
    return attack


class AdversarialMethod(TrainingMethod):
    """A method = inner maximisation (`perturb`) + outer minimisation (`outer_loss`)."""

    def __init__(self, settings: MethodSettings, generator: torch.Generator | None = None) -> None:
        super().__init__(settings, generator)
        self.attack = inner_attack(self.threat)  # a frozen config: builds nothing, holds no per-call state

    @property
    def threat(self) -> ThreatModel:
        """The threat model the inner maximisation searches (the settings' own unless a method fixes more)."""
        return self.settings.threat

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Adversarial inputs (detached) and anything the outer loss reuses (e.g. TRADES' clean logits)."""
        with attack_mode(model, self.settings.bn_mode) as inner:
            x_adv = self.attack.inner_max(inner, x, y, generator=self.generator)
        return x_adv, {}

    def outer_loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, extra: dict[str, Tensor]) -> StepOutput:
        raise NotImplementedError

    def step(self, model: nn.Module, x: Tensor, y: Tensor, *, on_attack_done: AttackDone = None) -> StepOutput:
        x_adv, extra = self.perturb(model, x, y)
        if on_attack_done is not None:
            on_attack_done()
        return self.outer_loss(model, x, x_adv, y, extra)


@dataclass(frozen=True)
class PGDATSettings(MethodSettings):
    """PGD-AT (Madry et al. 2018): minimise CE on PGD-k examples."""


class PGDAT(AdversarialMethod):
    """PGD adversarial training: ``loss = CE(f(x_adv), y)``; no clean forward is spent (23F at k=10)."""

    settings: PGDATSettings

    def outer_loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, extra: dict[str, Tensor]) -> StepOutput:
        adv_logits = model(x_adv)
        loss = cross_entropy(adv_logits, y, self.settings.label_smoothing)
        metrics = {"adv_acc": accuracy(adv_logits, y), "loss": loss.detach()}
        return StepOutput(loss=loss, logits=None, adv_logits=adv_logits, metrics=metrics)


@dataclass(frozen=True)
class TRADESSettings(MethodSettings):
    """TRADES (Zhang et al. 2019): CE(clean) + beta * KL(clean || adv); the inner loss is the KL."""

    beta: float = 6.0
    loss: str = "kl"


class TRADES(AdversarialMethod):
    """TRADES. The clean probabilities that the attack targets are computed once (27F at k=10,
    REFERENCE.md section 3), in the attack's BatchNorm mode, as the TRADES code does in eval mode."""

    settings: TRADESSettings

    @property
    def threat(self) -> ThreatModel:
        return self.settings.threat.replace(loss="kl")  # the TRADES inner maximisation is the KL by definition

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        with attack_mode(model, self.settings.bn_mode) as inner:
            with torch.no_grad():
                target = inner(x).float()
            x_adv = self.attack.inner_max(inner, x, y, target_logits=target, generator=self.generator)
        return x_adv, {}

    def outer_loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, extra: dict[str, Tensor]) -> StepOutput:
        logits = model(x)
        adv_logits = model(x_adv)
        natural = cross_entropy(logits, y, self.settings.label_smoothing)
        robust = trades_kl(adv_logits, logits)
        loss = natural + self.settings.beta * robust
        metrics = {
            "clean_acc": accuracy(logits, y),
            "adv_acc": accuracy(adv_logits, y),
            "natural_loss": natural.detach(),
            "kl": robust.detach(),
            "loss": loss.detach(),
        }
        return StepOutput(loss=loss, logits=logits, adv_logits=adv_logits, metrics=metrics)


@dataclass(frozen=True)
class MARTSettings(MethodSettings):
    """MART (Wang et al. 2020): boosted CE on x_adv + beta * KL weighted by (1 - p_y(x))."""

    beta: float = 6.0


class MART(AdversarialMethod):
    """MART, following Wang et al. 2020 eq. (5) and their reference code (same epsilons)."""

    settings: MARTSettings

    def outer_loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, extra: dict[str, Tensor]) -> StepOutput:
        logits = model(x)
        adv_logits = model(x_adv)
        adv_probs = F.softmax(adv_logits.float(), dim=1)
        # boosted CE: CE on x_adv plus a margin term pushing down the most likely wrong class
        top2 = adv_probs.argsort(dim=1)[:, -2:]
        wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
        bce = cross_entropy(adv_logits, y, self.settings.label_smoothing) + F.nll_loss(
            torch.log(1.0001 - adv_probs + 1e-12), wrong
        )
        clean_probs = F.softmax(logits.float(), dim=1)
        true_probs = clean_probs.gather(1, y[:, None]).squeeze(1)
        kl = (clean_probs * (torch.log(clean_probs + 1e-12) - torch.log(adv_probs + 1e-12))).sum(dim=1)
        robust = (kl * (1.0000001 - true_probs)).mean()
        loss = bce + self.settings.beta * robust
        metrics = {
            "clean_acc": accuracy(logits, y),
            "adv_acc": accuracy(adv_logits, y),
            "bce": bce.detach(),
            "kl": robust.detach(),
            "loss": loss.detach(),
        }
        return StepOutput(loss=loss, logits=logits, adv_logits=adv_logits, metrics=metrics)


@dataclass(frozen=True)
class FastATSettings(PGDATSettings):
    """Fast AT (Wong et al. 2020): one FGSM step from a uniform random start, step alpha = 1.25 eps.

    ``n_steps``/``step_size`` of the attack config are ignored: the step is ``step_ratio * eps``.
    """

    step_ratio: float = 1.25


class FastAT(PGDAT):
    """FGSM with random initialisation ("fast is better than free"): the perturbation is clipped back
    into the eps-ball and the image into [0, 1], as in Wong et al.'s code."""

    settings: FastATSettings

    @property
    def threat(self) -> ThreatModel:
        s = self.settings  # one step of step_ratio * eps from a random start, whatever the attack config says
        return s.threat.replace(n_steps=1, step_size=s.step_ratio * s.eps, random_start=True)
