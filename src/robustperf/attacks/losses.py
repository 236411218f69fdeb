"""Per-sample attack losses (larger = more adversarial).

All functions return a (B,) tensor; callers sum it before differentiating so that every sample's
gradient is independent of the batch it sits in.

- "ce": cross entropy.
- "cw": Carlini-Wagner margin, max_{j != y} z_j - z_y.
- "dlr": difference of logits ratio, Croce & Hein 2020 (papers, Sec. 4):
  -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3).
- "dlr_targeted": -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), the targeted DLR of APGD-T.
- "kl": KL(softmax(target_logits) || softmax(z)), the TRADES inner maximisation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("ce", "cw", "dlr", "kl")


class LossError(ValueError):
    """Raised for an unknown loss name or a loss used without what it needs."""


def best_other_logit(logits: Tensor, y: Tensor) -> Tensor:
    """max_{j != y} z_j per sample."""
    masked = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return masked.amax(dim=1)


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y - max_{j != y} z_j: positive iff the sample is classified correctly (ties aside)."""
    return logits.gather(1, y[:, None]).squeeze(1) - best_other_logit(logits, y)


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def cw_loss(logits: Tensor, y: Tensor) -> Tensor:
    return -margin(logits, y)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Untargeted DLR loss (Croce & Hein 2020, eq. 6); needs >= 3 classes."""
    top = logits.sort(dim=1, descending=True).values
    return -margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: Tensor, y: Tensor, y_target: Tensor) -> Tensor:
    """Targeted DLR loss (Croce & Hein 2020, eq. 7); needs >= 4 classes."""
    top = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, y_target[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def kl_loss(logits: Tensor, target_logits: Tensor) -> Tensor:
    """KL(softmax(target) || softmax(logits)) per sample, as in TRADES (Zhang et al. 2019)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    log_q = F.log_softmax(target_logits.float(), dim=1)
    return (log_q.exp() * (log_q - log_p)).sum(dim=1)


def attack_loss(name: str, logits: Tensor, y: Tensor, target_logits: Tensor | None = None) -> Tensor:
    """Per-sample loss `name` (one of LOSSES) of `logits` against labels `y`."""
    if name == "ce":
        return ce_loss(logits, y)
    if name == "cw":
        return cw_loss(logits, y)
    if name == "dlr":
        return dlr_loss(logits, y)
    if name == "kl":
        if target_logits is None:
            raise LossError('loss "kl" needs target_logits (the clean logits, as in TRADES)')
        return kl_loss(logits, target_logits)
    raise LossError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")
