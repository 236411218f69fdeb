"""Independently trained ensemble members (the "standard ensembling scheme" papers/004 asks for).

The model is an `robustperf.models.ensemble.Ensemble` (``model.name: ensemble``); this method trains each
member with ``member_method`` (PGD-AT by default) on its own adversarial examples, exactly as k separate
runs on the same minibatches would, and sums the members' losses so one backward and one optimiser step
update them all. Inference averages the members' predictions. Per training image this costs k times the
member method, and one forward costs k member forwards: in units of the ensemble's forward pass F (which
the FLOP counter measures on the whole ensemble) the method's forward equivalents are those of
``member_method`` (23F for PGD-10 members), and both training and inference FLOPs are k times a member's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from robustperf.training.methods.adversarial import AdversarialMethod
from robustperf.training.methods.base import (
    AttackDone,
    MethodConfigError,
    MethodSettings,
    StepOutput,
    TrainingMethod,
)

if TYPE_CHECKING:
    from robustperf.models.ensemble import Ensemble


@dataclass(frozen=True)
class EnsembleSettings(MethodSettings):
    """Attributes:
    member_method: the registered method each member is trained with (not free_at or ensemble).
    beta: the member method's beta (TRADES / MART).
    """

    member_method: str = "pgd_at"
    beta: float = 6.0


class EnsembleMethod(TrainingMethod):
    """Runs ``member`` (a built training method) once per ensemble member and adds up the losses."""

    settings: EnsembleSettings

    def __init__(self, settings: MethodSettings, generator: torch.Generator | None = None,
                 member: TrainingMethod | None = None) -> None:
        super().__init__(settings, generator)
        if member is None:
            raise MethodConfigError("the ensemble method needs its member method (build it with create_method)")
        if member.replays != 1:
            raise MethodConfigError("ensemble members cannot replay minibatches: choose another member_method")
        self.member = member

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.member.set_epoch(epoch)

    def check_model(self, model: nn.Module) -> None:
        self._ensemble(model)

    @staticmethod
    def _ensemble(model: nn.Module) -> Ensemble:
        from robustperf.models.ensemble import find_ensemble

        ens = find_ensemble(model)
        if ens is None:
            raise MethodConfigError("method 'ensemble' trains the members of an ensemble model: set "
                                    "model.name=ensemble (model.kwargs: member, members, combine, ...)")
        return ens

    def step(self, model: nn.Module, x: Tensor, y: Tensor, *, on_attack_done: AttackDone = None) -> StepOutput:
        ens = self._ensemble(model)
        k = len(ens.members)
        if isinstance(self.member, AdversarialMethod):
            perturbed: list[tuple[Tensor, dict[str, Tensor]]] = []
            for i in range(k):  # every member's inner maximisation first, against that member alone
                with ens.only(i):
                    perturbed.append(self.member.perturb(model, x, y))
            if on_attack_done is not None:
                on_attack_done()
            outs = []
            for i, (x_adv, extra) in enumerate(perturbed):
                with ens.only(i):
                    outs.append(self.member.outer_loss(model, x, x_adv, y, extra))
        else:
            outs = []
            for i in range(k):
                with ens.only(i):
                    outs.append(self.member.step(model, x, y, on_attack_done=on_attack_done if i == 0 else None))
        loss = torch.stack([o.loss for o in outs]).sum()  # independent members: the gradients do not mix
        metrics = {key: torch.stack([o.metrics[key].detach().float() for o in outs]).mean()
                   for key in outs[0].metrics}
        metrics["loss"] = loss.detach()
        return StepOutput(loss=loss, logits=None, adv_logits=None, metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "member": self.member.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "member" in state:
            self.member.load_state_dict(state["member"])
