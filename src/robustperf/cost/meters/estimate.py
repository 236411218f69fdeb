"""The "estimate" meter: not a measurement, ``joules = a stated power x measured seconds``.

Where no counter can be read (many VMs, ``energy_uj`` readable by root only), energy is estimated as
codecarbon does without a counter: from a stated power (``cost.watts`` / ``--watts``), else the GPU's
datasheet TDP, else the CPU's per-core power times the process's CPU time (`cpu_time.CpuTimeMeter`).
The assumption is written into the reading's ``source`` (which starts with ``"estimate:"``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from robustperf.cost.meters.base import Clock, EnergyMeterError, EnergyReading, Window
from robustperf.cost.meters.cpu_time import CpuTimeMeter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PowerEstimate:
    """A stated power and why it was chosen (goes into the reading's source)."""

    watts: float
    basis: str


def _cores_in_use() -> int:
    """CPU cores this process can use: its affinity, capped by torch's intra-op threads when torch is loaded."""
    import sys

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    torch = sys.modules.get("torch")  # never import torch here
    if torch is not None and hasattr(torch, "get_num_threads"):
        cores = max(1, min(cores, int(torch.get_num_threads())))
    return cores


def _gpu_name(device_index: int | None) -> str | None:
    import sys

    torch = sys.modules.get("torch")  # never import torch here
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        return str(torch.cuda.get_device_name(0 if device_index is None else device_index))
    except (RuntimeError, AssertionError):
        return None


def estimate_power(
    watts: float | None = None, *, device_index: int | None = None, n_cores: int | None = None
) -> PowerEstimate:
    """The power an estimate assumes: the stated ``watts``, else the GPU's datasheet TDP, else per-core CPU power.

    Args:
        watts: a stated mean power (``cost.watts`` / ``--watts``).
        device_index: the CUDA device trained on (None: CPU unless torch sees a GPU).
        n_cores: CPU cores in use (default: this process's CPU affinity).
    """
    from robustperf.cost.constants import CPU_WATTS_PER_CORE, gpu_spec

    if watts is not None:
        if watts <= 0:
            raise EnergyMeterError(f"watts must be > 0, got {watts}")
        return PowerEstimate(float(watts), f"stated power {watts:g} W (cost.watts / --watts)")
    name = _gpu_name(device_index) if device_index is not None else None
    if name is not None:
        try:
            spec = gpu_spec(name)
            return PowerEstimate(spec.tdp_watts, f"TDP of {spec.name} ({spec.source})")
        except ValueError:
            log.info("GPU %s has no datasheet entry: estimating from CPU cores instead", name)
    cores = n_cores or _cores_in_use()
    per_core = CPU_WATTS_PER_CORE
    return PowerEstimate(
        per_core.value * cores,
        f"{per_core.value:g} W/core x {cores} CPU core(s) in use (Green Algorithms default per-core power, "
        f"{per_core.year}; DRAM not included)",
    )


@dataclass(frozen=True)
class EstimateMeterConfig:
    """Energy = a stated power x measured seconds."""

    watts: float
    basis: str = "stated power"

    def __post_init__(self) -> None:
        if not self.watts > 0:
            raise EnergyMeterError(f"estimate meter watts must be > 0, got {self.watts}; give --watts / cost.watts")


class EstimateMeter:
    """Not a measurement: ``joules = watts x seconds`` with the assumption written into ``source``."""

    def __init__(self, config: EstimateMeterConfig, *, clock: Clock = time.perf_counter) -> None:
        self.config = config
        self.source = f"estimate: {config.watts:g} W = {config.basis}"
        self._window = Window(clock)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        seconds = self._window.elapsed("estimate meter")
        return EnergyReading(self.config.watts * seconds, seconds, self.source)

    def stop(self) -> EnergyReading:
        return self.read()


def build(device_index: int | None = None, watts: float | None = None) -> EstimateMeter | CpuTimeMeter:
    """The registered factory: a stated power x time, or per-core power x CPU time when only cores are known."""
    power = estimate_power(watts, device_index=device_index)
    if watts is None and "W/core" in power.basis:  # no stated power, no GPU datasheet: the CPU's share of the work
        from robustperf.cost.constants import CPU_WATTS_PER_CORE

        per_core = CPU_WATTS_PER_CORE
        return CpuTimeMeter(per_core.value, f"Green Algorithms default per-core power, {per_core.year}; DRAM not "
                                            "included")
    return EstimateMeter(EstimateMeterConfig(power.watts, power.basis))
