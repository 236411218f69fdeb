"""Projected gradient descent (Madry et al. 2018): the training-time inner loop and the PGD-k attack.

`PGD` (registered as "pgd") has two verbs:

- `PGD.perturb`, the evaluation attack: restarts, losses ce/cw/dlr, and per-point early stopping - a point
  is dropped from the batch as soon as it is misclassified, and its first adversarial example is kept;
- `PGD.inner_max`, the training-time inner maximisation (PGD-AT, TRADES, MART, fast AT and the per-epoch
  evaluation build theirs with ``create_attack("pgd", **threat.pgd_params())``): `pgd_perturb` with the
  attack's settings. It returns the last iterate of every point, takes gradients with respect to the input
  only (``torch.autograd.grad`` on the perturbation, so no parameter's ``.grad`` is touched), draws its
  random start from the caller's generator (the training method's, saved with the run) and never switches
  the model between train and eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustperf.attacks.base import (
    ATTACKS,
    AttackCall,
    AttackConfig,
    AttackConfigError,
    AttackResult,
    BaseAttack,
    SearchModel,
)
from robustperf.attacks.losses import LOSSES, attack_loss
from robustperf.attacks.projections import ascent_direction, check_norm, project, random_start


def _check_loss(loss: str, allowed: tuple[str, ...]) -> None:
    if loss not in allowed:
        raise AttackConfigError(f"unknown loss {loss!r}; use one of {', '.join(allowed)}")


def pgd_perturb(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    n_steps: int,
    norm: str = "linf",
    loss: str = "ce",
    random_start: bool = True,
    target_logits: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run `n_steps` of PGD from `x` and return the last iterate.

    Args:
        model: maps images in [0, 1] to logits; left in whatever train/eval mode the caller chose.
        x: clean images (B, C, H, W) in [0, 1].
        y: labels (B,).
        eps: radius of the threat model, in [0, 1] pixel units.
        step_size: step length (linf: per-coordinate; l2: Euclidean).
        n_steps: number of gradient steps (0 returns the random start, or x).
        norm: "linf" or "l2".
        loss: "ce", "cw" (margin), "dlr" or "kl" (TRADES; needs `target_logits`).
        random_start: start from a uniform random point of the ball instead of `x`.
        target_logits: clean logits for loss "kl" (detached here).
        generator: RNG for the random start; the global RNG is never used when given.

    Returns:
        x_adv, detached, with ||x_adv - x|| <= eps and 0 <= x_adv <= 1.
    """
    check_norm(norm)
    _check_loss(loss, LOSSES)
    if loss == "kl" and target_logits is None:
        raise AttackConfigError('loss "kl" needs target_logits (the clean logits, as in TRADES)')
    x = x.detach()
    tgt = target_logits.detach() if target_logits is not None else None
    x_adv = _start(x, eps, norm, random_start, generator)
    for _ in range(n_steps):
        grad, _ = _input_grad(model, x_adv, y, loss, tgt)
        x_adv = project(x_adv + step_size * ascent_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


def _start(x: Tensor, eps: float, norm: str, use_random: bool, generator: torch.Generator | None) -> Tensor:
    if use_random:
        return random_start(x, eps, norm, generator)
    return x.clone()


def _input_grad(
    model: nn.Module | SearchModel, x_adv: Tensor, y: Tensor, loss: str, target_logits: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Gradient of the summed per-sample loss w.r.t. the input only, plus the logits (reused by callers)."""
    with torch.enable_grad():
        x_req = x_adv.detach().requires_grad_(True)
        logits = model(x_req)
        value = attack_loss(loss, logits.float(), y, target_logits).sum()
        (grad,) = torch.autograd.grad(value, x_req)
    return grad.detach(), logits.detach().float()


@dataclass(frozen=True)
class PGDConfig(AttackConfig):
    """PGD-k. Defaults: the cheap proxy of REFERENCE.md section 2 (PGD-40, CW loss, step 2/255).

    ``loss="kl"`` (TRADES) is for `PGD.inner_max` only, which is handed the clean logits it targets.
    """

    n_steps: int = 40
    step_size: float | None = None  # None: 2/255 for linf at eps 8/255, i.e. eps / 4; eps / 4 for l2 too
    loss: str = "cw"
    n_restarts: int = 1
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_loss(self.loss, ("ce", "cw", "dlr", "kl"))
        if self.n_steps < 0 or self.n_restarts < 1:
            raise AttackConfigError("need n_steps >= 0 and n_restarts >= 1")

    @property
    def resolved_step_size(self) -> float:
        return self.step_size if self.step_size is not None else self.eps / 4


@ATTACKS.register("pgd")
class PGD(BaseAttack):
    """PGD-k with restarts; keeps the first misclassified iterate of each point."""

    config_cls = PGDConfig
    config: PGDConfig

    def inner_max(self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None,
                  target_logits: Tensor | None = None) -> Tensor:
        """The training-time inner maximisation: `pgd_perturb` with this attack's settings, one run.

        Args:
            model: maps images in [0, 1] to logits, in the train/eval mode the caller chose.
            x: clean images (B, C, H, W) in [0, 1].
            y: labels (B,).
            generator: RNG of the random start (the training method's); None draws from the global RNG.
            target_logits: the clean logits loss "kl" (TRADES) pulls away from.

        Returns:
            The last iterate, detached, in the eps-ball and in [0, 1].
        """
        cfg = self.config
        if cfg.n_restarts != 1:
            raise AttackConfigError(f"the inner maximisation runs once: n_restarts must be 1, got {cfg.n_restarts}")
        return pgd_perturb(model, x, y, eps=cfg.eps, step_size=cfg.resolved_step_size, n_steps=cfg.n_steps,
                           norm=cfg.norm, loss=cfg.loss, random_start=cfg.random_start, target_logits=target_logits,
                           generator=generator)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackResult:
        if self.config.loss == "kl":
            raise AttackConfigError('loss "kl" is the TRADES inner maximisation (PGD.inner_max with the clean '
                                    'logits); evaluate with loss "ce", "cw" or "dlr"')
        return super().perturb(model, x, y)

    def _attack(self, model: SearchModel, x: Tensor, y: Tensor, call: AttackCall) -> Tensor:
        cfg = self.config
        x_best = x.clone()
        alive = torch.arange(x.shape[0], device=x.device)  # indices of points still robust
        for _ in range(cfg.n_restarts):
            if alive.numel() == 0:
                break
            x_best[alive], fooled = self._one_run(model, x[alive], y[alive], call.generator)
            alive = alive[~fooled]
        return x_best

    def _one_run(self, model: SearchModel, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One PGD run; returns the point to keep for each input and whether it fooled the (search) model."""
        cfg = self.config
        x_out = x.clone()
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        idx = torch.arange(x.shape[0], device=x.device)
        x_adv = _start(x, cfg.eps, cfg.norm, cfg.random_start, generator)
        xs, ys = x, y
        for step in range(cfg.n_steps + 1):
            grad, logits = (
                _input_grad(model, x_adv, ys, cfg.loss) if step < cfg.n_steps else (None, model.logits(x_adv))
            )
            now = logits.argmax(1) != ys
            if now.any():  # drop points as soon as they fall: logits are those of the gradient pass
                x_out[idx[now]] = x_adv[now]
                fooled[idx[now]] = True
                keep = ~now
                idx, xs, ys, x_adv = idx[keep], xs[keep], ys[keep], x_adv[keep]
                grad = grad[keep] if grad is not None else None
            if grad is None or idx.numel() == 0:
                break
            x_adv = project(x_adv + cfg.resolved_step_size * ascent_direction(grad, cfg.norm), xs, cfg.eps, cfg.norm)
        return x_out, fooled
