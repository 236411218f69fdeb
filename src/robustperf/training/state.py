"""What a training checkpoint holds, typed, with its save and restore beside it.

``last.pt`` is a `TrainCheckpoint`: model, optimiser, EMA, each rank's `RankState` (attack RNG, loader
position, global RNG states), the run's `Progress` and the metered seconds/joules so far. On disk it is
the same plain dict (tensors and plain data, loaded with ``weights_only=True``) that earlier versions
wrote, so their run directories still resume. ``best.pt`` holds the evaluated weights and their metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from robustperf.models.loading import ModelSpec
from robustperf.store import checkpoint as ckpt
from robustperf.training.setup import TrainingError

if TYPE_CHECKING:
    from robustperf.training.setup import TrainParts

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass
class Progress:
    """How far a run is: counters, the running sums of the current log window and epoch, best and last eval.

    Attributes:
        step: optimiser steps done.
        epoch: current epoch (0-based).
        batch_in_epoch: batches of the current epoch done.
        samples_seen: training samples processed by all ranks.
        epoch_loss: sum of this epoch's batch losses (float64, on the device: no sync per step).
        epoch_batches: batches summed in ``epoch_loss``.
        sums: running sums of the train metrics since the last log row; ``"n"`` counts the batches.
        best: metrics of the best evaluation so far.
        last_eval: metrics of the latest evaluation.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples_seen: int = 0
    epoch_loss: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    epoch_batches: int = 0
    sums: dict[str, Tensor | int] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> Progress:
        self.epoch_loss = self.epoch_loss.to(device)
        self.sums = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.sums.items()}
        return self


@dataclass
class RankState:
    """What differs between ranks: the method's attack RNG, the loader's shard position, global RNGs."""

    method: dict[str, Any]
    loader: dict[str, Any]
    rng: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "loader": self.loader, "rng": self.rng}


@dataclass
class TrainCheckpoint:
    """The content of ``last.pt``.

    Attributes:
        run_id: the run it belongs to.
        model_spec: how to rebuild the model.
        model: the trained weights (not the EMA).
        optimizer: optimiser state.
        ema: EMA state (None without EMA).
        per_rank: one `RankState` per rank.
        progress: counters and sums.
        world_size: processes of the run (resume needs the same).
        seconds: metered wall seconds so far, all attempts.
        joules: metered joules so far (None: a time-only meter ran).
        metrics_bytes: size of metrics.jsonl when the checkpoint was written; a resume cuts the file back to
            it (None in checkpoints of older versions: rows with a later step are dropped instead).
    """

    run_id: str
    model_spec: ModelSpec
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    ema: dict[str, Any] | None
    per_rank: list[RankState]
    progress: Progress
    world_size: int
    seconds: float
    joules: float | None
    metrics_bytes: int | None = None

    # ---------------------------------------------------------------------------- on disk

    def to_payload(self) -> dict[str, Any]:
        p = self.progress
        return {
            "format": CHECKPOINT_FORMAT,
            "run_id": self.run_id,
            "model_spec": self.model_spec.to_dict(),
            "model": self.model,
            "optimizer": self.optimizer,
            "ema": self.ema,
            "per_rank": [r.to_dict() for r in self.per_rank],
            "progress": {
                "step": p.step, "epoch": p.epoch, "batch_in_epoch": p.batch_in_epoch,
                "samples_seen": p.samples_seen, "world_size": self.world_size,
                "seconds": self.seconds, "joules": self.joules,
                "epoch_loss": p.epoch_loss.clone().cpu(), "epoch_batches": p.epoch_batches,
                "sums": {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in p.sums.items()},
                "metrics_bytes": self.metrics_bytes,
            },
            "best": dict(p.best),
            "last_eval": dict(p.last_eval),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TrainCheckpoint:
        pr = payload["progress"]
        progress = Progress(
            step=int(pr["step"]), epoch=int(pr["epoch"]), batch_in_epoch=int(pr["batch_in_epoch"]),
            samples_seen=int(pr["samples_seen"]), epoch_loss=pr["epoch_loss"],
            epoch_batches=int(pr["epoch_batches"]), sums=dict(pr["sums"]),
            best=dict(payload["best"]), last_eval=dict(payload["last_eval"]),
        )
        return cls(
            run_id=payload["run_id"], model_spec=ModelSpec.from_dict(payload["model_spec"]), model=payload["model"],
            optimizer=payload["optimizer"], ema=payload["ema"],
            per_rank=[RankState(r["method"], r["loader"], r["rng"]) for r in payload["per_rank"]],
            progress=progress, world_size=int(pr["world_size"]), seconds=float(pr["seconds"]), joules=pr["joules"],
            metrics_bytes=pr.get("metrics_bytes"),
        )

    def save(self, directory: Path) -> None:
        """Write ``last.pt`` atomically, keeping the one it replaces as ``last.prev.pt``."""
        ckpt.save_last(directory, self.to_payload())

    @classmethod
    def load_latest(cls, directory: Path, map_location: torch.device | str = "cpu") -> TrainCheckpoint | None:
        """The newest usable checkpoint in ``directory`` (None if there is none)."""
        payload = ckpt.load_latest(directory, map_location=map_location)
        return None if payload is None else cls.from_payload(payload)

    # ---------------------------------------------------------------------------- into and out of a run

    @classmethod
    def capture(cls, parts: TrainParts, progress: Progress, per_rank: list[RankState], *, run_id: str,
                world_size: int, seconds: float, joules: float | None,
                metrics_bytes: int | None = None) -> TrainCheckpoint:
        """A checkpoint of the run's components now (``per_rank``: every rank's `local_state`)."""
        return cls(run_id=run_id, model_spec=parts.model_spec, model=parts.raw.state_dict(),
                   optimizer=parts.optimizer.state_dict(),
                   ema=parts.ema.state_dict() if parts.ema is not None else None,
                   per_rank=per_rank, progress=progress, world_size=world_size, seconds=seconds, joules=joules,
                   metrics_bytes=metrics_bytes)

    def restore(self, parts: TrainParts, *, rank: int, world_size: int, device: torch.device) -> Progress:
        """Load every component from this checkpoint; returns the progress to continue from.

        Raises:
            TrainingError: the checkpoint was written by a different number of processes.
        """
        if self.world_size != world_size:
            raise TrainingError(
                f"checkpoint was written with {self.world_size} processes, this job has "
                f"{world_size}: resume with the same world size or use --no-resume"
            )
        parts.raw.load_state_dict(self.model)
        parts.optimizer.load_state_dict(self.optimizer)
        if parts.ema is not None and self.ema is not None:
            parts.ema.load_state_dict(self.ema)
        local = self.per_rank[rank]
        parts.method.load_state_dict(local.method)
        parts.loader.load_state_dict(local.loader)
        ckpt.set_rng_state(local.rng)
        return self.progress.to(device)


def local_state(parts: TrainParts) -> RankState:
    """This rank's part of a checkpoint."""
    return RankState(parts.method.state_dict(), parts.loader.state_dict(), ckpt.rng_state())


def save_best(parts: TrainParts, module: torch.nn.Module, metrics: dict[str, Any], *, run_dir: Path,
              run_id: str) -> None:
    """``best.pt``: the evaluated weights (EMA when used) and the metrics that made them best."""
    payload = {"format": CHECKPOINT_FORMAT, "run_id": run_id, "model_spec": parts.model_spec.to_dict(),
               "model": module.state_dict(), "metrics": dict(metrics)}
    ckpt.save_checkpoint(run_dir / ckpt.BEST, payload)


__all__ = ["CHECKPOINT_FORMAT", "Progress", "RankState", "TrainCheckpoint", "local_state", "save_best"]
