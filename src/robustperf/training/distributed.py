"""DDP setup from the launcher's environment (torchrun, srun, jsrun-style variables).

Rank and world size come from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun) or
``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID`` (srun, submitit); inside a Slurm job the rendezvous
address is the allocation's first host and the port follows from the job id (`slurm_rendezvous`). With a
world size of 1 nothing is initialised and training runs as a single process.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


class DistributedError(ValueError):
    """The environment asks for DDP but lacks what it needs; the message names the fix."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Rank, world size and local rank from torchrun or Slurm variables (single process if neither)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        return DistInfo(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    if "SLURM_NTASKS" in env and "SLURM_PROCID" in env:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", "0")))
    return DistInfo()


def init_distributed(info: DistInfo, device: torch.device) -> bool:
    """Initialise the default process group if needed (nccl on CUDA, gloo on CPU).

    Returns:
        True if this call created the process group (the caller destroys it at the end).
    """
    if not info.enabled or dist.is_initialized():
        return False
    slurm_rendezvous(os.environ)
    if "MASTER_ADDR" not in os.environ:
        if int(os.environ.get("SLURM_NNODES", "1")) > 1:
            raise DistributedError(
                "multi-node DDP needs MASTER_ADDR (and MASTER_PORT): export them in the job script, e.g. "
                "MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)"
            )
        os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ.setdefault("MASTER_PORT", "29500")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)
    log.info("DDP: rank %d of %d on %s (%s)", info.rank, info.world_size, device, backend)
    return True


def slurm_rendezvous(env: MutableMapping[str, str]) -> None:
    """Inside a Slurm job step (srun, submitit) without MASTER_ADDR/MASTER_PORT: the first host of the
    allocation and a port derived from the job id (jobs sharing a node get different ports)."""
    if "SLURM_JOB_ID" not in env or "SLURM_PROCID" not in env or "WORLD_SIZE" in env:
        return
    if "MASTER_PORT" not in env and env["SLURM_JOB_ID"].isdigit():
        env["MASTER_PORT"] = str(20000 + int(env["SLURM_JOB_ID"]) % 20000)
    if "MASTER_ADDR" in env or "SLURM_JOB_NODELIST" not in env:
        return
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]], capture_output=True,
                             text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not resolve the first host of %s (%s)", env["SLURM_JOB_NODELIST"], exc)
        return
    if out:
        env["MASTER_ADDR"] = out[0]


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(value: float, info: DistInfo, device: torch.device) -> float:
    """Sum a float over ranks (identity in a single process)."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's flag on every rank (used to stop all ranks together on a failure)."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
