"""Fine-tuning a sequence classifier on token-id sequences (papers/000 App. D: one epoch, lr 1e-5).

Sequences are batched with right padding; the loss is pooled at each sequence's last real token
(`scoring.classifier_logits`). FLOPs follow the paper: 6 x tokens x params per training step (real,
unpadded tokens).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustperf.llm.config import LLMTrainingConfig
from robustperf.llm.cost import train_flops
from robustperf.llm.models import count_parameters
from robustperf.llm.scoring import autocast_context, classifier_logits, pad_batch

logger = logging.getLogger(__name__)


class TrainingError(ValueError):
    """Training that cannot go on (empty data, NaN loss); the message names the fix."""


@dataclass(frozen=True)
class FinetuneResult:
    """Summary of one fine-tuning call.

    Attributes:
        train_loss: mean loss over the last epoch.
        n_sequences: sequences processed (all epochs).
        n_tokens: real tokens processed (all epochs).
        n_steps: optimiser steps.
        flops: 6 x n_tokens x params.
    """

    train_loss: float
    n_sequences: int
    n_tokens: int
    n_steps: int
    flops: float


def finetune(model: torch.nn.Module, seqs: Sequence[Sequence[int]], labels: Sequence[int], cfg: LLMTrainingConfig,
             *, pad_id: int, epochs: int, seed: int, device: torch.device, precision: str = "fp32",
             optimizer: torch.optim.Optimizer | None = None) -> FinetuneResult:
    """Train ``model`` for ``epochs`` on (sequence, label) pairs with AdamW (shuffled by ``seed``).

    Args:
        optimizer: reuse an optimiser across rounds (its state carries over); None builds a fresh AdamW.
    """
    if not seqs:
        raise TrainingError("no training sequences (check task.n_train and model.max_length)")
    if len(seqs) != len(labels):
        raise TrainingError(f"{len(seqs)} sequences but {len(labels)} labels")
    opt = optimizer or make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    n_params = count_parameters(model)
    model.train()
    n_seq = n_tok = steps = 0
    epoch_loss = math.nan
    total_steps = epochs * math.ceil(len(seqs) / cfg.batch_size)
    for _ in range(epochs):
        order = torch.randperm(len(seqs), generator=gen).tolist()
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(steps, total_steps, cfg)
            loss = _step(model, opt, [seqs[i] for i in idx], [labels[i] for i in idx], cfg, pad_id, device,
                         precision, steps)
            total += loss * len(idx)
            n_seq += len(idx)
            n_tok += sum(len(seqs[i]) for i in idx)
            steps += 1
        epoch_loss = total / len(order)
    model.eval()
    return FinetuneResult(epoch_loss, n_seq, n_tok, steps, train_flops(n_tok, n_params))


def lr_at(step: int, total_steps: int, cfg: LLMTrainingConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then constant or cosine decay to lr/10 at ``total_steps``."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule == "constant":
        return cfg.lr * warm
    progress = min(1.0, max(0, step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: LLMTrainingConfig) -> torch.optim.Optimizer:
    """AdamW with the config's lr and weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, seqs: list[Sequence[int]], labels: list[int],
          cfg: LLMTrainingConfig, pad_id: int, device: torch.device, precision: str, step: int) -> float:
    ids, mask = pad_batch(seqs, pad_id, device)
    y = torch.tensor(labels, dtype=torch.long, device=device)
    with autocast_context(device, precision):
        loss = F.cross_entropy(classifier_logits(model, ids, mask).float(), y)
    if not torch.isfinite(loss):
        raise TrainingError(f"loss became {float(loss)} at step {step}; lower training.lr")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    opt.step()
    return float(loss.detach())
