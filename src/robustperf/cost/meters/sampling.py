"""The "sampling" meter: NVML power samples on a thread, integrated with the trapezoid rule.

For GPUs without the energy counter (REFERENCE.md section 3): 1-s sampling read 1.8 % low on a bursty
load, so the default is 10 Hz.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustperf.cost.meters.base import Clock, EnergyMeterError, EnergyReading
from robustperf.cost.meters.nvml_lib import import_pynvml, nvml_handle, nvml_init


def trapezoid_joules(times: list[float], watts: list[float]) -> float:
    """Integrate power samples (seconds, watts) with the trapezoid rule."""
    total = 0.0
    for i in range(1, len(times)):
        total += 0.5 * (watts[i] + watts[i - 1]) * (times[i] - times[i - 1])
    return total


@dataclass(frozen=True)
class SamplingMeterConfig:
    """Power sampling for GPUs without the energy counter."""

    device_index: int | None = None
    interval_s: float = 0.1

    def __post_init__(self) -> None:
        if not 0.001 <= self.interval_s <= 10:
            raise EnergyMeterError(f"sampling interval_s must be in [0.001, 10], got {self.interval_s}")


class SamplingMeter:
    """Polls a power source on a daemon thread and integrates it (trapezoid rule).

    ``power_w`` defaults to NVML's ``nvmlDeviceGetPowerUsage`` (mW -> W) of the
    configured GPU; tests pass any callable returning watts.
    """

    source = "sampling"

    def __init__(
        self,
        config: SamplingMeterConfig | None = None,
        *,
        power_w: Callable[[], float] | None = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.config = config or SamplingMeterConfig()
        self._power_w = power_w
        self._clock = clock
        self._times: list[float] = []
        self._watts: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pynvml: Any = None

    def _nvml_power(self) -> Callable[[], float]:
        pynvml = import_pynvml()
        nvml_init(pynvml)
        self._pynvml = pynvml
        handle = nvml_handle(pynvml, self.config.device_index)
        return lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0

    def _sample(self, power: Callable[[], float]) -> None:
        watts = float(power())
        with self._lock:
            self._times.append(self._clock())
            self._watts.append(watts)

    def _loop(self, power: Callable[[], float]) -> None:
        while not self._stop.wait(self.config.interval_s):
            self._sample(power)

    def start(self) -> None:
        power = self._power_w or self._nvml_power()
        self._power_w = power
        self._times, self._watts = [], []
        self._stop.clear()
        self._sample(power)
        self._thread = threading.Thread(target=self._loop, args=(power,), name="robustperf-power", daemon=True)
        self._thread.start()

    def read(self) -> EnergyReading:
        if not self._times:
            raise RuntimeError("sampling meter: call start() before read()/stop()")
        with self._lock:
            times, watts = list(self._times), list(self._watts)
        now = self._clock()
        # Hold the last sample up to now so a read between samples covers the whole window.
        times.append(now)
        watts.append(watts[-1])
        return EnergyReading(trapezoid_joules(times, watts), now - times[0], self.source)

    def stop(self) -> EnergyReading:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._power_w is not None:
            self._sample(self._power_w)  # close the window with a fresh sample
        reading = self.read()
        if self._pynvml is not None:
            self._pynvml.nvmlShutdown()
            self._pynvml = None
            self._power_w = None
        return reading

    @property
    def n_samples(self) -> int:
        return len(self._times)


def build(device_index: int | None = None, interval_s: float = 0.1) -> SamplingMeter:
    """The registered factory (``create_meter("sampling", interval_s=...)``)."""
    return SamplingMeter(SamplingMeterConfig(device_index, interval_s))
