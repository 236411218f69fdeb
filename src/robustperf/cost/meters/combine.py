"""What is done with readings once taken: an idle baseline, and the sum over the ranks of a DDP run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from robustperf.cost.meters.base import EnergyMeter, EnergyReading


def measure_idle_watts(
    meter: EnergyMeter, seconds: float = 2.0, *, sleep: Callable[[float], None] = time.sleep
) -> float | None:
    """Mean power of an idle device over ``seconds`` (run it before the work starts).

    Returns:
        Idle watts, or None when the meter measures time only.
    """
    meter.start()
    sleep(seconds)
    reading = meter.stop()
    return reading.watts


def with_idle(reading: EnergyReading, idle_watts: float | None) -> EnergyReading:
    """The reading with its idle baseline attached (the raw joules are kept as measured)."""
    return replace(reading, idle_watts=idle_watts)


def sum_across_ranks(reading: EnergyReading, *, device: Any = None) -> EnergyReading:
    """Sum joules over DDP ranks (each rank meters its own GPU); seconds is the slowest rank's.

    Without an initialised process group the reading is returned as is. If any
    rank measured time only, the sum is ``None`` (a partial sum would mislead).

    Args:
        reading: this rank's reading.
        device: where to put the reduction tensor (the rank's CUDA device for NCCL).
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return reading
    have = 0.0 if reading.joules is None else 1.0
    joules = torch.tensor([reading.joules or 0.0, have], dtype=torch.float64, device=device)
    seconds = torch.tensor([reading.seconds], dtype=torch.float64, device=device)
    dist.all_reduce(joules, op=dist.ReduceOp.SUM)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    world = dist.get_world_size()
    total = float(joules[0]) if int(joules[1]) == world else None
    return EnergyReading(total, float(seconds[0]), reading.source, reading.idle_watts, n_devices=world)
