"""What a zoo model costs: parameters, forward FLOPs per image, and a metered, priced AutoAttack evaluation.

`evaluate_with_cost` runs robustperf's AutoAttack (`robustperf.evaluation.evaluate`) on the model wrapped
in a `PassCounter`, under an energy meter, then prices the evaluation as it actually ran: FLOPs from the
counted image-forwards and image-gradients (a gradient is 2F, a forward F), kWh/CO2/USD from the metered
(or estimated) energy with the constants of `robustperf.cost.accounting.run_cost`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from robustperf.config import CostConfig
from robustperf.evaluation import EvalResult, evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationCost:
    """An evaluation and its price.

    Attributes:
        result: the `EvalResult`.
        n_params: parameters of the model.
        forward_flops_per_image: counted FLOPs of one forward pass.
        eval: JSON-ready cost of the evaluation (flops, image counts, seconds, kWh, CO2, USD, constants).
    """

    result: EvalResult
    n_params: int
    forward_flops_per_image: float
    eval: dict[str, Any]


def static_cost(model: nn.Module, input_shape: tuple[int, int, int] = (3, 32, 32)) -> tuple[int, float]:
    """(parameters, forward FLOPs per image) of a model, counted without running it on data."""
    from robustperf.cost.flops import forward_flops
    from robustperf.models import count_parameters

    return count_parameters(model), forward_flops(model, input_shape)


def evaluate_with_cost(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf",
                       version: str = "standard", batch_size: int = 500, device: str | None = None, seed: int = 0,
                       attack_params: Mapping[str, Mapping[str, Any]] | None = None,
                       cost_cfg: CostConfig | None = None) -> EvaluationCost:
    """AutoAttack on (x, y), metered and priced (see the module docstring).

    Args:
        model: maps [0, 1] images to logits.
        x, y: the evaluation points.
        eps, norm, version, seed, attack_params: the AutoAttack evaluation.
        batch_size, device: how it runs.
        cost_cfg: meter and prices (``energy_meter``, ``watts``, ``pue``, ``grid``, ``usd_per_kwh``...).
    """
    from robustperf.cost.accounting import run_cost
    from robustperf.cost.analytic import eval_flops_from_counts
    from robustperf.cost.energy import create_meter
    from robustperf.cost.flops import PassCounter

    cfg = cost_cfg or CostConfig()
    n_params, fwd = static_cost(model, tuple(int(s) for s in x.shape[1:]))  # type: ignore[arg-type]
    counter = PassCounter(model)
    meter = create_meter(cfg.energy_meter, watts=cfg.watts)
    meter.start()
    try:
        result = evaluate(counter, x, y, attack="autoattack", eps=eps, norm=norm, version=version, seed=seed,
                          batch_size=batch_size, device=device, attack_params=attack_params or {})
    finally:
        reading = meter.stop()
    flops = eval_flops_from_counts(fwd, n_forward_images=counter.n_forward_images,
                                   n_gradient_images=counter.n_gradient_images)
    priced = run_cost(cfg, seconds=reading.seconds, samples_seen=0, flops_per_sample=None, joules=reading.joules,
                      energy_source=reading.source, eval_flops=flops)
    eval_cost = {
        "attack": f"autoattack-{version}", "norm": norm, "eps": eps, "n_examples": int(x.shape[0]),
        "attack_params": {k: dict(v) for k, v in (attack_params or {}).items()},
        "clean_acc": result.clean_acc, "robust_acc": result.robust_acc,
        "flops": flops, "n_forward_images": counter.n_forward_images,
        "n_gradient_images": counter.n_gradient_images, "seconds": reading.seconds,
        **{k: priced[k] for k in ("energy_joules", "energy_kwh", "co2_kg", "usd", "energy_source", "energy_method",
                                  "constants")},
    }
    return EvaluationCost(result, n_params, fwd, eval_cost)


__all__ = ["EvaluationCost", "evaluate_with_cost", "static_cost"]
