"""A RobustBench leaderboard entry for a robustperf run: the same extended model_info JSON as `robustperf zoo`.

The run's trained model (best checkpoint, EMA weights when used) is evaluated with AutoAttack on the first
`n_examples` test points of its own data set, as RobustBench does, under an energy meter; the JSON carries
the accuracies in RobustBench's fields and, in ``cost``, the evaluation's price beside the run's training
cost from its record (FLOPs, seconds, kWh, CO2, USD), so the cost is published next to the submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustperf.config import CostConfig
from robustperf.store.record import RunDir, describe_machine
from robustperf.zoo.cost import evaluate_with_cost
from robustperf.zoo.model_info import CostFields, Paper, model_info, write_model_info

_TRAIN_KEYS = ("train_flops", "flops_per_sample", "samples_seen", "seconds", "gpu_hours", "energy_kwh", "co2_kg",
               "usd", "energy_method", "energy_source")


def architecture_name(model_name: str, kwargs: Mapping[str, Any]) -> str:
    """RobustBench's way of naming an architecture where it has one ("WideResNet-28-10"), else name(args)."""
    if model_name == "wide_resnet":
        return f"WideResNet-{kwargs.get('depth', 28)}-{kwargs.get('width', 10)}"
    args = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    return f"{model_name}({args})" if args else model_name


def threat_model_name(norm: str) -> str:
    return {"linf": "Linf", "l2": "L2"}[norm]


def run_leaderboard_entry(run_dir: str | Path, out_root: str | Path, *, n_examples: int = 10_000,
                          which: str = "best", eps: float | None = None, batch_size: int = 500,
                          device: str | None = None, attack_params: Mapping[str, Mapping[str, Any]] | None = None,
                          cost_cfg: CostConfig | None = None, paper: Paper | None = None,
                          name: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Evaluate a run's model with AutoAttack and write its model_info JSON under `out_root`.

    Args:
        run_dir: the run's directory.
        out_root: model_info root; the file is ``<out_root>/<dataset>/<Linf|L2>/<name>.json``.
        n_examples: first test points (RobustBench: 10,000).
        which: "best" or "last" checkpoint.
        eps: radius (default: the run's evaluation radius, `RunConfig.eval_threat`); the norm is the run's.
        batch_size, device, attack_params: how AutoAttack runs.
        cost_cfg: meter and prices (default: the run's ``cost`` section).
        paper: name, link, authors, venue of the entry.
        name: the entry's model name (default: the run id).

    Raises:
        FileNotFoundError: not a run directory. CheckpointError: no checkpoint.
    """
    from robustperf.data import build_data, eval_tensors
    from robustperf.models import load_run_model

    rd = RunDir(run_dir)
    record = rd.read_record()
    if record is None or record.status != "finished":
        state = "no result.json" if record is None else f"status {record.status}"
        raise ValueError(f"run {rd.run_id} is not finished ({state}): train it to the end before submitting it")
    model, cfg = load_run_model(rd, which=which)
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    x, y = eval_tensors(bundle.test, None)  # the test set in order: RobustBench evaluates its first n points
    x, y = x[:n_examples], y[:n_examples]
    threat = cfg.eval_threat_at(eps)  # the run's evaluation threat model (its training eps), or `eps`
    radius = threat.eps
    priced = evaluate_with_cost(model, x, y, eps=radius, norm=threat.norm, batch_size=batch_size,
                                device=device, attack_params=attack_params, cost_cfg=cost_cfg or cfg.cost)
    train = {k: record.cost.to_dict().get(k) for k in _TRAIN_KEYS}
    entry = name or rd.run_id
    info = model_info(name=entry, dataset=cfg.data.dataset, architecture=architecture_name(cfg.model.name,
                                                                                           cfg.model.kwargs),
                      eps=radius, clean_acc=priced.result.clean_acc, robust_acc=priced.result.robust_acc,
                      cost=CostFields(priced.n_params, priced.forward_flops_per_image, priced.eval,
                                      describe_machine(), train=train),
                      paper=paper or Paper(name=entry))
    info["cost"]["run_id"] = rd.run_id
    path = write_model_info(out_root, cfg.data.dataset, threat_model_name(threat.norm), entry, info)
    return path, info


__all__ = ["architecture_name", "run_leaderboard_entry"]
