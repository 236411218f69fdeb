"""RobustBench's ``model_info`` JSON, extended with what the result cost.

RobustBench keeps one JSON per leaderboard entry at ``model_info/<dataset>/<threat_model>/<name>.json`` with
the fields of its ``ModelInfo`` dataclass (link, name, authors, additional_data, number_forward_passes,
dataset, venue, architecture, eps, clean_acc, reported, autoattack_acc, footnote; accuracies as percent
strings with two decimals, as its ``update_json`` writes them). robustperf writes those fields unchanged
and adds one ``cost`` object: parameters, forward FLOPs per image, the evaluation's FLOPs, seconds, kWh,
CO2 and USD with the constants used, and the machine it ran on.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustperf.store.io import write_json_atomic

# the fields of RobustBench's ModelInfo (robustbench/utils.py, version 1.1.1), in its order
MODEL_INFO_FIELDS = ("link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                     "architecture", "eps", "clean_acc", "reported", "corruptions_acc", "corruptions_acc_3d",
                     "corruptions_mce", "corruptions_mce_3d", "autoattack_acc", "footnote")


@dataclass(frozen=True)
class Paper:
    """What RobustBench lists about an entry beyond its numbers (all optional)."""

    name: str = ""
    link: str = ""
    authors: str = ""
    venue: str = ""
    additional_data: bool = False
    reported: float | None = None
    footnote: str | None = None


@dataclass(frozen=True)
class CostFields:
    """The extension: what one forward pass and the whole evaluation cost, and where it ran.

    Attributes:
        n_params: parameters of the model.
        forward_flops_per_image: FLOPs of one forward pass of one image (counted).
        eval: the evaluation: attack, n_examples, flops, seconds, energy_kwh, co2_kg, usd, energy_method, ...
        machine: one line naming the machine (`robustperf.store.record.describe_machine`).
        train: training cost of a robustperf run (train_flops, energy_kwh, usd, ...), when known.
    """

    n_params: int
    forward_flops_per_image: float | None
    eval: dict[str, Any]
    machine: str
    train: dict[str, Any] = field(default_factory=dict)


def _percent(fraction: float) -> str:
    return str(round(fraction * 100, 2))


def model_info(*, name: str, dataset: str, architecture: str, eps: float | None, clean_acc: float,
               robust_acc: float, cost: CostFields, paper: Paper | None = None,
               number_forward_passes: int = 1) -> dict[str, Any]:
    """The extended model_info dict (RobustBench's fields first, then ``cost``)."""
    from robustperf import __version__

    p = paper or Paper()
    info: dict[str, Any] = {
        "link": p.link, "name": p.name or name, "authors": p.authors, "additional_data": p.additional_data,
        "number_forward_passes": number_forward_passes, "dataset": dataset, "venue": p.venue,
        "architecture": architecture, "eps": eps, "clean_acc": _percent(clean_acc), "reported": p.reported,
        "autoattack_acc": _percent(robust_acc), "footnote": p.footnote,
    }
    info["cost"] = {
        "n_params": cost.n_params, "forward_flops_per_image": cost.forward_flops_per_image, "eval": cost.eval,
        **({"train": cost.train} if cost.train else {}), "machine": cost.machine,
        "robustperf_version": __version__,
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return info


def model_info_path(root: str | Path, dataset: str, threat_model: str, name: str) -> Path:
    """RobustBench's place for an entry: ``<root>/<dataset>/<threat_model>/<name>.json``."""
    return Path(root) / dataset / threat_model / f"{name}.json"


def write_model_info(root: str | Path, dataset: str, threat_model: str, name: str, info: dict[str, Any]) -> Path:
    """Write `info` in RobustBench's model_info layout under `root`; returns the path."""
    path = model_info_path(root, dataset, threat_model, name)
    write_json_atomic(path, info)
    return path


__all__ = ["MODEL_INFO_FIELDS", "CostFields", "Paper", "model_info", "model_info_path", "write_model_info"]
