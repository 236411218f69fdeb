"""Price a planned run before it starts: counted FLOPs x planned samples -> GPU-hours -> kWh, CO2, USD.

The library side of ``robustperf cost estimate``. FLOPs per sample are counted on a weightless meta-device
model running the method's own training iteration, which the caller hands over (`accounting.Iteration`;
the CLI takes it from the training engine), so pricing and training can never count different things.
The data set's shape and classes come from the data package's `DATASET_FACTS`; its size from the files on
disk when they exist (`count_images`: a partial copy is priced on what it holds), else the official count.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from robustperf.cost import conversions as cv
from robustperf.cost.accounting import Iteration, pgd_eval_flops, run_cost, train_flops_per_sample
from robustperf.cost.constants import gpu_spec

if TYPE_CHECKING:
    import torch

    from robustperf.config import RunConfig


log = logging.getLogger(__name__)


class PlanningError(ValueError):
    """A run that cannot be priced as given; the message names the fix."""


def dataset_facts(cfg: RunConfig, *, input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                  train_size: int | None = None) -> tuple[tuple[int, ...], int, int]:
    """(input shape, classes, training images per epoch) of the run: given values win over the data set's facts.

    Raises:
        PlanningError: the data set has no fixed facts and a value is missing.
    """
    from robustperf.data.sources import DATASET_FACTS, count_images

    facts = DATASET_FACTS.get(cfg.data.dataset)
    if facts is None and (input_shape is None or num_classes is None or train_size is None):
        raise PlanningError(f"dataset {cfg.data.dataset!r} has no built-in shape; give --input-shape, "
                            "--num-classes and --train-size")
    side = cfg.data.image_size or (facts.side if facts else 0)
    shape = input_shape or ((facts.channels if facts else 0), side, side)
    size = facts.n_train if facts else 0
    if train_size is None and facts is not None:
        on_disk = count_images(cfg.data)  # a local copy may hold fewer images than the official release
        if on_disk is not None:
            size = on_disk[0]
        elif cfg.data.root is not None:
            log.info("no %s files at %s: pricing with the official %d training images", cfg.data.dataset,
                     cfg.data.root, size)
    if train_size is None:
        n_train = cfg.data.n_train
        train_size = min(n_train, size) if (n_train and size) else (n_train or size)
    return shape, num_classes or (facts.num_classes if facts else 0), train_size


def meta_model(cfg: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """The run's model on the meta device: no weights are allocated, so counting a WRN-70-16 is free."""
    import torch

    from robustperf.models import create_model

    kwargs: dict[str, Any] = dict(cfg.model.kwargs)
    with torch.device("meta"):
        return create_model(cfg.model.name, num_classes=num_classes, input_shape=input_shape, **kwargs)


def planned_samples(cfg: RunConfig, train_size: int) -> tuple[float, float]:
    """(training samples, evaluation rounds) the config plans (free AT: divided by its replays, like the loop)."""
    from robustperf.cost.analytic import replays_of

    samples = float(cfg.optim.samples) if cfg.optim.samples else float(cfg.optim.epochs * train_size)
    samples /= replays_of(cfg.method.name, cfg.method.kwargs)
    # Like the training loop: whole epochs, evaluated every n-th epoch and after the last one.
    epochs = math.ceil(samples / train_size) if train_size else 0
    return samples, float(math.ceil(epochs / cfg.eval.every_n_epochs))


def estimate_run(
    cfg: RunConfig,
    iteration: Iteration,
    *,
    gpu: str,
    mfu: float,
    throughput: float | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    train_size: int | None = None,
    watts: float | None = None,
) -> dict[str, Any]:
    """The cost block of the planned run ``cfg``, with what it was derived from.

    Args:
        cfg: the planned run.
        iteration: the method's training iteration (``robustperf.training.methods.flop_iteration(cfg.method)``).
        gpu: GPU to price on (a `robustperf.cost.constants.GPUS` key).
        mfu: achieved share of the GPU's dense bf16 peak (ignored when ``throughput`` is given).
        throughput: measured training images per second (replaces peak x MFU).
        input_shape: C, H, W when the data set has no fixed facts.
        num_classes: classes, likewise.
        train_size: training images per epoch (default: the data set's, capped by ``data.n_train``).
        watts: mean board power (default: the GPU's TDP).
    """
    shape, classes, size = dataset_facts(cfg, input_shape=input_shape, num_classes=num_classes, train_size=train_size)
    model = meta_model(cfg, shape, classes)
    flops = train_flops_per_sample(model, cfg, iteration, input_shape=shape)
    samples, eval_rounds = planned_samples(cfg, size)
    ev = cfg.eval
    eval_flops = eval_rounds * pgd_eval_flops(model, shape, n_examples=ev.n_examples, n_steps=ev.attack.n_steps).total
    train_flops = flops.per_sample * samples
    spec = gpu_spec(gpu)
    if throughput:
        hours = cv.gpu_hours_from_throughput(samples, throughput) * (1 + eval_flops / train_flops)
    else:
        hours = cv.gpu_hours_from_flops(train_flops + eval_flops, gpu=gpu, mfu=mfu)
    board_watts = watts if watts is not None else spec.tdp_watts
    joules = cv.joules_from_gpu_hours(hours, watts=board_watts)
    cost = run_cost(cfg.cost, seconds=hours * 3600, samples_seen=samples, flops_per_sample=flops.per_sample,
                    joules=joules, energy_source=f"estimate: {board_watts:g} W board power", eval_flops=eval_flops)
    cost.update(
        gpu=spec.name,
        mfu=None if throughput else mfu,
        throughput=throughput,
        input_shape=list(shape),
        num_classes=classes,
        train_size=size,
        n_params=sum(p.numel() for p in model.parameters()),
        flops_breakdown=flops.to_dict(),
        run_id=cfg.run_id,
    )
    return cost


__all__ = ["PlanningError", "dataset_facts", "estimate_run", "meta_model", "planned_samples"]
