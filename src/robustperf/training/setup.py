"""Everything `train` builds from a config before the first step: data, model, method, optimiser,
schedule, EMA, the held-out evaluation subset and the step runner."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from robustperf.config import RunConfig
from robustperf.models.loading import ModelSpec
from robustperf.training.distributed import DistInfo
from robustperf.training.ema import EMA
from robustperf.training.evaluation import EvalSettings, eval_settings
from robustperf.training.methods import TrainingMethod, create_method
from robustperf.training.optim import build_optimizer
from robustperf.training.schedules import LRSchedule
from robustperf.training.step import StepRunner


class TrainingError(ValueError):
    """A run that cannot start or continue as configured; the message names the fix."""


@dataclass
class TrainParts:
    """The built components of one training run.

    Attributes:
        bundle: the data (train/test sets and their facts).
        raw: the model (unwrapped: checkpoints and evaluation use it).
        model: ``raw`` behind torch.compile / DDP when configured (what the steps run).
        model_spec: how to rebuild ``raw`` (stored in checkpoints).
        n_params: parameters of the model.
        loader: the resumable training loader.
        steps_per_epoch: batches per epoch.
        total_steps: minibatches of the whole run (optimiser steps / ``method.replays``).
        n_epochs: epochs begun by the run (the last may be partial).
        optimizer: the optimiser.
        schedule: learning-rate factor per step.
        ema: weight average (None without EMA).
        method: the training method (attack inside).
        x_eval: fixed held-out inputs evaluated every ``eval.every_n_epochs`` epochs.
        y_eval: their labels.
        eval_settings: the evaluation attack.
        stepper: one optimisation step (the body of the loop).
    """

    bundle: Any
    raw: nn.Module
    model: nn.Module
    model_spec: ModelSpec
    n_params: int
    loader: Any
    steps_per_epoch: int
    total_steps: int
    n_epochs: int
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    ema: EMA | None
    method: TrainingMethod
    x_eval: Tensor
    y_eval: Tensor
    eval_settings: EvalSettings
    stepper: StepRunner

    @property
    def eval_module(self) -> nn.Module:
        """What is evaluated and saved as best: the EMA weights when the run averages, else the model."""
        return self.ema.module if self.ema is not None else self.raw


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_backends(cfg: RunConfig, device: torch.device) -> None:
    """Deterministic kernels when asked; otherwise cuDNN autotuning on GPUs."""
    if cfg.runtime.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def build_parts(cfg: RunConfig, info: DistInfo, device: torch.device) -> TrainParts:
    """Build the run's components in a fixed order (the order fixes what each RNG draw is used for)."""
    from robustperf.data import build_data, eval_tensors, make_train_loader
    from robustperf.models import count_parameters

    configure_backends(cfg, device)
    seed_everything(cfg.runtime.seed)  # identical initial weights on every rank
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    spec = ModelSpec(
        name=cfg.model.name, num_classes=bundle.num_classes, input_shape=tuple(bundle.input_shape),
        kwargs=dict(cfg.model.kwargs), mean=None if bundle.mean is None else tuple(bundle.mean),
        std=None if bundle.std is None else tuple(bundle.std),
    )
    raw = spec.build().to(device)
    loader = make_train_loader(bundle, cfg.data, seed=cfg.runtime.seed, device=device,
                               rank=info.rank, world_size=info.world_size)
    steps_per_epoch = len(loader)
    if steps_per_epoch < 1:
        raise TrainingError("the training loader yields no batch: lower data.batch_size or raise data.n_train")
    stepper = build_stepper(cfg, raw, device, info)  # method, optimiser, EMA, wrapped model: no global RNG draws
    method = stepper.method
    total_steps = _total_steps(cfg, steps_per_epoch, info.world_size, method.replays)
    warmup = round(cfg.optim.warmup_epochs * steps_per_epoch / method.replays)
    schedule = LRSchedule(cfg.optim.schedule, total_steps, warmup, tuple(cfg.optim.milestones))
    # the same held-out subset for every run (seed 0), so runs with different seeds compare directly
    x_eval, y_eval = eval_tensors(bundle.test, cfg.eval.n_examples, seed=0)
    return TrainParts(
        bundle=bundle, raw=raw, model=stepper.model, model_spec=spec, n_params=count_parameters(raw), loader=loader,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        n_epochs=math.ceil(total_steps / steps_per_epoch), optimizer=stepper.optimizer, schedule=schedule,
        ema=stepper.ema, method=method, x_eval=x_eval.to(device), y_eval=y_eval.to(device),
        eval_settings=eval_settings(cfg), stepper=stepper,
    )


def build_stepper(cfg: RunConfig, raw: nn.Module, device: torch.device, info: DistInfo | None = None) -> StepRunner:
    """The step a run takes around its model ``raw``: method, optimiser, EMA, the compiled/DDP-wrapped model.

    Shared by `build_parts` and the overhead profiler (`robustperf.training.overhead`), so the profiled step
    is the trained one. Puts ``raw`` in channels_last when configured (in place); draws nothing from the
    global RNG (the method's random starts have their own generator, seeded by the run's seed and the rank).

    Raises:
        MethodConfigError: the method cannot train ``raw`` (e.g. the ensemble method without an ensemble).
    """
    info = info or DistInfo()
    if cfg.runtime.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(cfg.runtime.seed * 1000 + 17 + info.rank)
    method = create_method(cfg.method, generator=generator)
    method.check_model(raw)  # e.g. the ensemble method needs an ensemble model: fail before any work
    optimizer = build_optimizer(raw, cfg.optim)
    ema = EMA(raw, cfg.optim.ema_decay, cfg.optim.ema_warmup_steps) if cfg.optim.ema_decay else None
    model = _wrap(raw, cfg, info, device)
    return StepRunner(method, model, raw, optimizer, ema=ema, precision=cfg.runtime.precision,
                      channels_last=cfg.runtime.channels_last, grad_clip=cfg.optim.grad_clip)


def _total_steps(cfg: RunConfig, steps_per_epoch: int, world_size: int, replays: int = 1) -> int:
    """Minibatches of the run: ``optim.samples`` (global images) when set, else ``optim.epochs`` epochs.

    A method that replays each minibatch m times (free AT) takes m optimiser steps per minibatch, so the
    budget is divided by m (Shafahi et al. 2019 train N/m epochs): ``optim.epochs`` and ``optim.samples``
    keep meaning as many weight updates as natural training with that setting.
    """
    if cfg.optim.samples is None:
        return max(1, math.ceil(cfg.optim.epochs * steps_per_epoch / replays))
    global_batch = cfg.data.batch_size * world_size
    return max(1, math.ceil(cfg.optim.samples / (global_batch * replays)))


def _wrap(model: nn.Module, cfg: RunConfig, info: DistInfo, device: torch.device) -> nn.Module:
    """torch.compile (opt-in), then DDP when distributed. Checkpoints always use the unwrapped model."""
    # torch.compile of a module returns an OptimizedModule (an nn.Module); its stub only says Callable
    fast = cast(nn.Module, torch.compile(model)) if cfg.runtime.compile else model
    if not info.enabled:
        return fast
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(fast, device_ids=ids)


__all__ = ["TrainParts", "TrainingError", "build_parts", "build_stepper", "configure_backends", "seed_everything"]
