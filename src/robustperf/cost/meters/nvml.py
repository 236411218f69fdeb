"""The "nvml" meter: the GPU's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, Volta and newer).

REFERENCE.md section 3: the best primitive on Volta and newer GPUs, in millijoules, updated about every
100 ms on an H100, so windows should be >= 1 s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from robustperf.cost.meters.base import Clock, EnergyMeterError, EnergyReading, Window
from robustperf.cost.meters.nvml_lib import import_pynvml, nvml_handle, nvml_init

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NvmlMeterConfig:
    """NVML total-energy counter of one GPU."""

    device_index: int | None = None


class NvmlMeter:
    """Reads the GPU's cumulative energy counter (mJ) at start and at each read."""

    source = "nvml"

    def __init__(self, config: NvmlMeterConfig | None = None, *, clock: Clock = time.perf_counter) -> None:
        self.config = config or NvmlMeterConfig()
        self._window = Window(clock)
        self._pynvml: Any = None
        self._handle: Any = None
        self._mj0 = 0

    def start(self) -> None:
        pynvml = import_pynvml()
        nvml_init(pynvml)
        try:
            handle = nvml_handle(pynvml, self.config.device_index)
            self._mj0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except pynvml.NVMLError as exc:  # pre-Volta GPUs have no counter
            pynvml.nvmlShutdown()
            raise EnergyMeterError(
                f"no NVML energy counter for this GPU ({exc}); use cost.energy_meter=sampling"
            ) from exc
        self._pynvml, self._handle = pynvml, handle
        self._window.begin()

    def read(self) -> EnergyReading:
        if self._handle is None:
            raise RuntimeError("nvml meter: call start() before read()/stop()")
        seconds = self._window.elapsed("nvml meter")
        mj = self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        return EnergyReading((mj - self._mj0) / 1000.0, seconds, self.source)

    def stop(self) -> EnergyReading:
        reading = self.read()
        if reading.seconds < 1.0:  # the counter advances in ~100 ms steps (REFERENCE.md s.3)
            log.warning("NVML energy window of %.2f s is shorter than 1 s: expect >10 %% error", reading.seconds)
        self._pynvml.nvmlShutdown()  # reference-counted by NVML: balances the nvmlInit in start()
        self._handle = None
        return reading


def build(device_index: int | None = None) -> NvmlMeter:
    """The registered factory; fails here, before any work, with the install hint when pynvml is missing."""
    import_pynvml()
    return NvmlMeter(NvmlMeterConfig(device_index=device_index))
