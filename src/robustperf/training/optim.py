"""Optimiser construction: SGD (Nesterov) or AdamW, optionally without weight decay on norm layers and biases."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, no_decay_on_norm: bool) -> list[dict[str, Any]]:
    """Two groups: decayed weights, and (if asked) 1-d parameters - norm scales/shifts and biases - without decay.

    Bartoldson et al. 2024 (REFERENCE.md section 1) use weight decay 5e-4 "not on BatchNorm parameters".
    """
    if not no_decay_on_norm:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """The optimiser an `OptimConfig` describes."""
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_on_norm)
    # one fused kernel per step on GPUs instead of a chain of foreach kernels
    fused = all(p.is_cuda for g in groups for p in g["params"]) or None
    if cfg.optimizer == "sgd":
        nesterov = cfg.nesterov and cfg.momentum > 0  # torch rejects Nesterov without momentum
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov, fused=fused)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
