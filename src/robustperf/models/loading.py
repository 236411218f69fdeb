"""A run's trained model back from its run directory, without the training engine.

Checkpoints store a `ModelSpec` (what `create_model` was called with) beside the weights, so the model
can be rebuilt from the checkpoint alone; evaluation, sweeps and the CLI load models through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robustperf.models.base import create_model
from robustperf.store import RunDir
from robustperf.store import checkpoint as ckpt

if TYPE_CHECKING:
    from robustperf.config import RunConfig


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a run's model: the registry name, its kwargs and the data facts it was built for.

    Attributes:
        name: registered model name.
        kwargs: model options (``model.kwargs`` of the config).
        num_classes: output classes.
        input_shape: one input's shape, e.g. (3, 32, 32).
        mean: per-channel normalisation mean inside the model (None: none).
        std: per-channel normalisation std.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def build(self) -> nn.Module:
        """A freshly initialised model of this spec (call `torch.manual_seed` first for a fixed init)."""
        return create_model(self.name, num_classes=self.num_classes, input_shape=self.input_shape,
                            mean=self.mean, std=self.std, **self.kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint (lists, not tuples: what ``weights_only`` loading accepts)."""
        return {"name": self.name, "kwargs": dict(self.kwargs), "num_classes": self.num_classes,
                "input_shape": list(self.input_shape), "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(name=data["name"], num_classes=int(data["num_classes"]), input_shape=tuple(data["input_shape"]),
                   kwargs=dict(data["kwargs"]), mean=None if data["mean"] is None else tuple(data["mean"]),
                   std=None if data["std"] is None else tuple(data["std"]))


def load_run_model(
    run_dir: str | Path | RunDir, which: str = "best", device: str | torch.device = "cpu"
) -> tuple[nn.Module, RunConfig]:
    """The trained model of a run (EMA weights when the run used EMA) and its config.

    Args:
        run_dir: a run directory (or `RunDir`).
        which: "best" (selected on ``eval.select_best_on``) or "last".
        device: where to put the model.

    Returns:
        (model in eval mode, RunConfig).

    Raises:
        ValueError: ``which`` is neither "best" nor "last".
        CheckpointError: the checkpoint is missing or corrupt.
    """
    from robustperf.config import config_from_dict

    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which={which!r}: use 'best' or 'last'")
    cfg = config_from_dict(rd.read_config())
    if which == "best":
        payload = ckpt.load_checkpoint(rd.checkpoints / ckpt.BEST)
        state = payload["model"]
    else:
        latest = ckpt.load_latest(rd.checkpoints)
        if latest is None:
            raise ckpt.CheckpointError(f"{rd.path} has no last checkpoint (was the run started?)")
        payload = latest
        state = payload["ema"]["module"] if payload.get("ema") else payload["model"]
    model = ModelSpec.from_dict(payload["model_spec"]).build()
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


__all__ = ["ModelSpec", "load_run_model"]
