"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness...", Sec. 3, Algorithm 1).

APGD needs no step-size tuning: it starts with step 2 * eps, uses momentum alpha = 0.75 (eq. 2), and at
checkpoints w_j (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), so intervals of
22, 19, 16, ... and at least 6 % of n_iter) halves a point's step size when
  1. the loss increased in fewer than rho = 0.75 of the steps since the last checkpoint, or
  2. the step was not halved at the last checkpoint and the best loss has not improved since,
and then restarts that point from its best (highest-loss) iterate. Settings: REFERENCE.md section 2.

Registered attacks: "apgd-ce" (cross entropy), "apgd-dlr" (untargeted DLR) and "apgd-t" (targeted DLR
against the 2nd..(n_target_classes+1)-th highest clean logits).

Speed (issue 3): every run works on "rows" = (point, restart-or-target) pairs. Rows of a point are
dropped as soon as any of them fools the model, the logits of each gradient pass decide success (no extra
forward), the last iterate needs a forward only, and where the reference loops over target classes one at
a time this runs as many targets at once as fit into `max_rows` images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from robustperf.attacks.base import ATTACKS, AttackCall, AttackConfig, AttackConfigError, BaseAttack, SearchModel
from robustperf.attacks.losses import attack_loss, dlr_targeted_loss
from robustperf.attacks.projections import ascent_direction, flat_norm, project
from robustperf.attacks.rows import Rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class APGDCommonConfig(AttackConfig):
    """Fields shared by the APGD attacks (defaults: AutoAttack "standard", REFERENCE.md section 2).

    Attributes:
        n_iter: iterations per run.
        n_restarts: runs from fresh random starts (per target class for APGD-T).
        rho: fraction of increasing steps below which the step size is halved.
        momentum: alpha of eq. (2); the first step has none.
        eot_iter: gradients averaged per step (Expectation over Transformation, for randomised models).
        max_rows: cap on images per forward/backward; None means the number of points passed in, so
            memory never exceeds the caller's batch. Freed rows are refilled with further restarts/targets.
    """

    n_iter: int = 100
    n_restarts: int = 1
    rho: float = 0.75
    momentum: float = 0.75
    eot_iter: int = 1
    max_rows: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_iter < 1 or self.n_restarts < 1 or self.eot_iter < 1:
            raise AttackConfigError("need n_iter >= 1, n_restarts >= 1 and eot_iter >= 1")
        if not 0 < self.rho <= 1 or not 0 < self.momentum <= 1:
            raise AttackConfigError("need 0 < rho <= 1 and 0 < momentum <= 1")
        if self.max_rows is not None and self.max_rows < 1:
            raise AttackConfigError("max_rows must be None or >= 1")


@dataclass(frozen=True)
class APGDConfig(APGDCommonConfig):
    """Untargeted APGD; `loss` is "ce" or "dlr"."""

    loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in ("ce", "dlr"):
            raise AttackConfigError(f"APGD loss must be 'ce' or 'dlr', got {self.loss!r}; use apgd-t for targeted DLR")


@dataclass(frozen=True)
class APGDDLRConfig(APGDConfig):
    loss: str = "dlr"


@dataclass(frozen=True)
class APGDTConfig(APGDCommonConfig):
    """APGD on the targeted DLR loss; targets are the 2nd..(n_target_classes+1)-th highest clean logits."""

    n_target_classes: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_target_classes < 1:
            raise AttackConfigError("n_target_classes must be >= 1")


def checkpoint_intervals(n_iter: int) -> tuple[int, int, int]:
    """(first interval, decrement, minimum interval) of the checkpoint schedule: 0.22, 0.03, 0.06 of n_iter."""
    return max(int(0.22 * n_iter), 1), max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1)


class _Rows(Rows):
    """Per-row state of one APGD run; `keep` drops rows from every tensor at once.

    Only pid, y, target, x0 and x are given at construction; `_run` sets the other tensors right after
    the first gradient pass, before any of them is read (until then they hold None).
    """

    NAMES = ("pid", "y", "target", "x0", "x", "x_prev", "grad", "x_best", "grad_best", "loss_best",
             "loss_prev", "loss_best_last", "reduced_last", "n_incr", "step")  # fmt: skip

    pid: Tensor  # index of the point (in the attacked batch) each row belongs to
    y: Tensor
    target: Tensor | None  # target class per row; None for untargeted runs
    x0: Tensor
    x: Tensor
    x_prev: Tensor
    grad: Tensor
    x_best: Tensor
    grad_best: Tensor
    loss_best: Tensor
    loss_prev: Tensor
    loss_best_last: Tensor
    reduced_last: Tensor
    n_incr: Tensor
    step: Tensor


class _APGDBase(BaseAttack):
    """The APGD loop over rows; subclasses say which runs (restarts/targets) to make."""

    config: APGDCommonConfig

    def _jobs(self, n_classes: int) -> list[int | None]:
        """One entry per run: the target rank (2 = second highest clean logit), or None if untargeted."""
        raise NotImplementedError

    def _loss_name(self) -> str:
        raise NotImplementedError

    def _attack(self, model: SearchModel, x: Tensor, y: Tensor, call: AttackCall) -> Tensor:
        jobs = self._jobs(call.clean_logits.shape[1])
        order = call.clean_logits.argsort(dim=1, descending=True)  # (B, C) for the targets
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        x_out = x.clone()
        cap = self.config.max_rows or x.shape[0]
        j = 0
        while j < len(jobs):
            alive = (~fooled).nonzero().squeeze(1)
            if alive.numel() == 0:
                break
            n_jobs = max(1, min(cap // alive.numel(), len(jobs) - j))  # fill the batch with more runs
            group = jobs[j : j + n_jobs]
            j += n_jobs
            pid = alive.repeat(len(group))  # job-major rows
            target = None
            if group[0] is not None:
                target = torch.cat([order[alive, rank - 1] for rank in group])  # type: ignore[operator]
            self._run(model, x, y, pid, target, fooled, x_out, call)
        call.extras["n_runs"] = len(jobs)
        return x_out

    def _grad_pass(self, model: SearchModel, rows: _Rows) -> tuple[Tensor, Tensor, Tensor]:
        """Loss (per row), input gradient and logits at rows.x; averaged over eot_iter passes."""
        grad = torch.zeros_like(rows.x)
        loss_sum = torch.zeros(len(rows), device=rows.x.device)
        logits = rows.x.new_empty(0)
        for _ in range(self.config.eot_iter):
            with torch.enable_grad():
                x_req = rows.x.detach().requires_grad_(True)
                logits = model(x_req)
                if rows.target is None:
                    loss = attack_loss(self._loss_name(), logits, rows.y)
                else:
                    loss = dlr_targeted_loss(logits, rows.y, rows.target)
                (g,) = torch.autograd.grad(loss.sum(), x_req)
            grad += g
            loss_sum += loss.detach()
        k = float(self.config.eot_iter)
        return loss_sum / k, grad / k, logits.detach()

    def _record_fooled(
        self, model: SearchModel, rows: _Rows, logits: Tensor, fooled: Tensor, x_out: Tensor
    ) -> Tensor | None:
        """Mark points whose row is misclassified (confirmed in fp32); return the rows to keep, None if all."""
        cand = logits.argmax(1) != rows.y
        ri = cand.nonzero().squeeze(1)  # one host sync per iteration, no extra forward
        if ri.numel() > 0 and self.config.search_dtype != "fp32":
            # a bf16 success only counts once a fresh fp32 forward agrees
            ri = ri[model.verdict_logits(rows.x[ri]).argmax(1) != rows.y[ri]]
        if ri.numel() == 0:
            return None
        first = torch.full_like(fooled, len(rows), dtype=torch.long)
        first.scatter_reduce_(0, rows.pid[ri], ri, reduce="amin")  # one row per point: the first
        ri = first[first < len(rows)]
        x_out[rows.pid[ri]] = rows.x[ri]
        fooled[rows.pid[ri]] = True
        return ~fooled[rows.pid]

    def _init(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Random start on the ball's boundary as in the original code: t / ||t|| * eps, then clipped."""
        cfg = self.config
        gen_device = generator.device
        if cfg.norm == "linf":
            t = 2 * torch.rand(x.shape, generator=generator, device=gen_device) - 1
            t = t / (t.flatten(1).abs().amax(1).view(-1, *([1] * (x.dim() - 1))) + 1e-12)
        else:
            t = torch.randn(x.shape, generator=generator, device=gen_device)
            t = t / (flat_norm(t) + 1e-12)
        return torch.clamp(x + cfg.eps * t.to(device=x.device, dtype=x.dtype), 0.0, 1.0)

    def _run(
        self,
        model: SearchModel,
        x: Tensor,
        y: Tensor,
        pid: Tensor,
        target: Tensor | None,
        fooled: Tensor,
        x_out: Tensor,
        call: AttackCall,
    ) -> None:
        cfg = self.config
        x0 = x[pid]
        rows = _Rows(pid=pid, y=y[pid], target=target, x0=x0, x=self._init(x0, call.generator))
        loss, rows.grad, logits = self._grad_pass(model, rows)
        _note_zero_grad(call.extras, rows.grad)
        keep = self._record_fooled(model, rows, logits, fooled, x_out)
        rows.x_prev, rows.x_best, rows.grad_best = rows.x, rows.x.clone(), rows.grad.clone()
        rows.loss_best, rows.loss_prev, rows.loss_best_last = loss, loss, loss.clone()
        rows.reduced_last = torch.ones_like(loss, dtype=torch.bool)
        rows.n_incr = torch.zeros_like(loss)
        rows.step = torch.full((len(rows), *([1] * (x.dim() - 1))), 2.0 * cfg.eps, device=x.device)
        if keep is not None:
            rows.keep(keep)
        interval, decrement, min_interval = checkpoint_intervals(cfg.n_iter)
        since_check = 0
        for i in range(cfg.n_iter):
            if len(rows) == 0:
                return
            self._step(rows, first=i == 0)
            if i == cfg.n_iter - 1:  # the last gradient would never be used: forward only
                self._record_fooled(model, rows, model.logits(rows.x), fooled, x_out)
                return
            loss, rows.grad, logits = self._grad_pass(model, rows)
            keep = self._record_fooled(model, rows, logits, fooled, x_out)  # before a checkpoint moves rows.x
            self._update_best(rows, loss)
            since_check += 1
            if since_check == interval:
                self._checkpoint(rows, interval)
                interval, since_check = max(interval - decrement, min_interval), 0
            if keep is not None:
                rows.keep(keep)

    def _step(self, rows: _Rows, first: bool) -> None:
        """Eq. (2): z = P(x + eta * dir(grad)); x_new = P(x + a (z - x) + (1 - a)(x - x_prev)); a = 1 at first."""
        cfg = self.config
        a = 1.0 if first else cfg.momentum
        z = project(rows.x + rows.step * ascent_direction(rows.grad, cfg.norm), rows.x0, cfg.eps, cfg.norm)
        x_new = project(rows.x + a * (z - rows.x) + (1 - a) * (rows.x - rows.x_prev), rows.x0, cfg.eps, cfg.norm)
        rows.x_prev, rows.x = rows.x, x_new

    @staticmethod
    def _update_best(rows: _Rows, loss: Tensor) -> None:
        rows.n_incr += (loss > rows.loss_prev).float()
        rows.loss_prev = loss
        better = loss > rows.loss_best
        rows.x_best = torch.where(_bcast(better, rows.x), rows.x, rows.x_best)
        rows.grad_best = torch.where(_bcast(better, rows.x), rows.grad, rows.grad_best)
        rows.loss_best = torch.where(better, loss, rows.loss_best)

    def _checkpoint(self, rows: _Rows, interval: int) -> None:
        """Halve the step and restart from the best point where condition 1 or 2 of Sec. 3.2 holds."""
        oscillating = rows.n_incr < self.config.rho * interval
        stalled = ~rows.reduced_last & (rows.loss_best <= rows.loss_best_last)
        reduce = oscillating | stalled
        rows.reduced_last = reduce
        rows.loss_best_last = rows.loss_best.clone()
        rows.n_incr = torch.zeros_like(rows.n_incr)
        r = _bcast(reduce, rows.x)
        rows.step = torch.where(r, rows.step / 2, rows.step)
        rows.x = torch.where(r, rows.x_best, rows.x)
        rows.grad = torch.where(r, rows.grad_best, rows.grad)



def _note_zero_grad(extras: dict[str, Any], grad: Tensor) -> None:
    zero = (grad.flatten(1).abs().amax(1) == 0).float().sum().item()
    extras["zero_grad_rows"] = extras.get("zero_grad_rows", 0) + int(zero)
    extras["grad_rows"] = extras.get("grad_rows", 0) + int(grad.shape[0])


def _bcast(mask: Tensor, like: Tensor) -> Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


@ATTACKS.register("apgd-ce")
class APGD(_APGDBase):
    """Untargeted APGD on the cross-entropy loss (or DLR with loss="dlr")."""

    config_cls = APGDConfig
    config: APGDConfig

    def _jobs(self, n_classes: int) -> list[int | None]:
        if self.config.loss == "dlr" and n_classes < 3:
            raise AttackConfigError(f"the DLR loss needs >= 3 classes, the model has {n_classes}")
        return [None] * self.config.n_restarts

    def _loss_name(self) -> str:
        return self.config.loss


@ATTACKS.register("apgd-dlr")
class APGDDLR(APGD):
    """Untargeted APGD on the DLR loss (AutoAttack "rand" and "plus")."""

    config_cls = APGDDLRConfig


@ATTACKS.register("apgd-t")
class APGDTargeted(_APGDBase):
    """APGD-T: targeted DLR against each of the top `n_target_classes` wrong classes (Sec. 4)."""

    config_cls = APGDTConfig
    config: APGDTConfig

    def _jobs(self, n_classes: int) -> list[int | None]:
        if n_classes < 4:
            raise AttackConfigError(f"the targeted DLR loss needs >= 4 classes, the model has {n_classes}")
        n_targets = min(self.config.n_target_classes, n_classes - 1)
        if n_targets < self.config.n_target_classes:
            log.warning("apgd-t: only %d target classes exist; using %d", n_classes - 1, n_targets)
        return [rank for rank in range(2, n_targets + 2) for _ in range(self.config.n_restarts)]

    def _loss_name(self) -> str:
        return "dlr_targeted"


__all__ = ["APGD", "APGDConfig", "APGDDLR", "APGDTConfig", "APGDTargeted", "checkpoint_intervals"]
