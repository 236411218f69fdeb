"""What every training method shares: the step's output, the method's settings, BatchNorm modes.

A training method is one verb, ``step(model, x, y) -> StepOutput`` (DESIGN.md, "Contracts"), so PGD-AT,
TRADES, MART, fast AT and AWP share one loop. The loop calls ``loss.backward()`` itself, then
``method.after_backward(model)`` (AWP restores its perturbed weights there), then the optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustperf.threat import ThreatModel

BNMode = Literal["eval", "batch_frozen"]
AttackDone = Callable[[], None] | None


class MethodConfigError(ValueError):
    """A training method that cannot be built as configured; the message names the fix."""


@dataclass(frozen=True)
class StepOutput:
    """One training step's result.

    Attributes:
        loss: the scalar to differentiate (the loop calls ``backward`` on it).
        logits: clean logits if the method computed them (None otherwise: no extra forward is spent).
        adv_logits: logits on the adversarial inputs (None for standard training).
        metrics: detached per-step scalars as 0-dim tensors (synchronised only when the loop logs).
    """

    loss: Tensor
    logits: Tensor | None
    adv_logits: Tensor | None
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSettings:
    """Settings every method reads: the training attack, label smoothing and the BatchNorm mode.

    Attributes:
        eps: radius of the training threat model ([0, 1] pixel units).
        step_size: PGD step length.
        n_steps: PGD steps of the inner maximisation.
        norm: "linf" or "l2".
        loss: inner loss of PGD ("ce", "cw"; TRADES always uses "kl").
        random_start: start PGD from a random point of the ball.
        label_smoothing: label smoothing of the cross-entropy terms (Bartoldson et al. 2024 use 0.1).
        bn_mode: BatchNorm while the attack runs, see `attack_mode`.
    """

    eps: float = 8 / 255
    step_size: float = 2 / 255
    n_steps: int = 10
    norm: str = "linf"
    loss: str = "ce"
    random_start: bool = True
    label_smoothing: float = 0.0
    bn_mode: BNMode = "eval"

    def __post_init__(self) -> None:
        if self.eps < 0 or self.step_size < 0 or self.n_steps < 0:
            raise MethodConfigError("method.attack needs eps >= 0, step_size >= 0 and n_steps >= 0")
        if self.bn_mode not in ("eval", "batch_frozen"):
            raise MethodConfigError(f"method.bn_mode must be 'eval' or 'batch_frozen', got {self.bn_mode!r}")

    @property
    def threat(self) -> ThreatModel:
        """The training threat model these settings describe (norm, eps and the attack's settings)."""
        return ThreatModel(norm=self.norm, eps=self.eps, step_size=self.step_size, n_steps=self.n_steps,
                           loss=self.loss, random_start=self.random_start)


def unwrap(model: nn.Module) -> nn.Module:
    """The module under a DistributedDataParallel wrapper (attacks run on it: no reducer hooks fire)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def attack_mode(model: nn.Module, bn_mode: BNMode) -> Iterator[nn.Module]:
    """Put the model in the state the inner maximisation runs in, and restore it afterwards.

    Why two modes (REFERENCE.md section 1, "BatchNorm during the attack"):

    - "eval": the attack runs with ``model.eval()``: BatchNorm uses its running statistics and nothing
      is updated. This is what the original PGD-AT and TRADES code and the Bartoldson et al. 2024 /
      Wang et al. 2023 pipelines do, and our default.
    - "batch_frozen": the model stays in train mode (BatchNorm normalises with the batch's statistics,
      dropout stays on) but the running statistics are frozen, so the attack's forward passes do not
      leak into them - the DM-Improves-AT variant. Implemented by switching off
      ``track_running_stats`` for the duration, which makes BatchNorm skip the running-stat update.

    Yields:
        The unwrapped module (not the DDP wrapper), on which the attack should run.
    """
    inner = unwrap(model)
    was_training = inner.training
    if bn_mode == "eval":
        inner.eval()
        try:
            yield inner
        finally:
            inner.train(was_training)
        return
    norms = [m for m in _batchnorms(inner) if m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield inner
    finally:
        for m in norms:
            m.track_running_stats = True


def cross_entropy(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross entropy in fp32 (logits may be bf16 under autocast)."""
    return F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)


def trades_kl(adv_logits: Tensor, clean_logits: Tensor) -> Tensor:
    """KL(softmax(clean) || softmax(adv)) summed over classes, averaged over the batch (TRADES, Zhang et al. 2019).

    This is ``nn.KLDivLoss(reduction="batchmean")(log_softmax(adv), softmax(clean))`` of the TRADES code.
    """
    log_p_adv = F.log_softmax(adv_logits.float(), dim=1)
    log_p_clean = F.log_softmax(clean_logits.float(), dim=1)
    return F.kl_div(log_p_adv, log_p_clean, reduction="batchmean", log_target=True)


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Fraction of correct predictions, as a detached 0-dim tensor (no host sync)."""
    return (logits.detach().argmax(dim=1) == y).float().mean()


class TrainingMethod:
    """Base class: a frozen settings object, a generator for the attack's random start, one verb."""

    settings: MethodSettings

    def __init__(self, settings: MethodSettings, generator: torch.Generator | None = None) -> None:
        self.settings = settings
        self.generator = generator
        self.epoch = 0

    @property
    def replays(self) -> int:
        """Optimiser steps the loop takes per minibatch, each a fresh ``step`` on the same batch (free AT: m)."""
        return 1

    def check_model(self, model: nn.Module) -> None:
        """Raise `MethodConfigError` if this method cannot train ``model`` (called once before training)."""

    def set_epoch(self, epoch: int) -> None:
        """Called by the loop at the start of each epoch (AWP's warm-up reads it)."""
        self.epoch = epoch

    def step(self, model: nn.Module, x: Tensor, y: Tensor, *, on_attack_done: AttackDone = None) -> StepOutput:
        """Loss (to differentiate) and logits of one batch.

        ``on_attack_done`` is called once the inner maximisation is over (at once for methods without
        one), so a FLOP counter can tell the attack's share from the outer loss's.
        """
        raise NotImplementedError

    def after_backward(self, model: nn.Module) -> None:
        """Hook between ``loss.backward()`` and the optimiser step (AWP restores weights, free AT moves delta)."""

    def state_dict(self) -> dict[str, Any]:
        """RNG state of the attack's random start (part of an exact resume)."""
        return {"generator": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"
