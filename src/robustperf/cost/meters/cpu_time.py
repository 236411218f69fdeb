"""Per-core CPU power x the CPU seconds this process used: the estimate on a CPU without a counter.

Not registered under a name of its own: the "estimate" (and "auto") meter builds it when no power is
stated and no GPU datasheet applies.
"""

from __future__ import annotations

import time

from robustperf.cost.meters.base import Clock, EnergyMeterError, EnergyReading, Window


class CpuTimeMeter:
    """Not a measurement: ``joules = per-core watts x the CPU seconds this process used`` (user + system).

    Wall time x cores in use tracked the machine's load, not the work (issue 27: on a shared VM a 2.8e11-FLOP
    run "used" more energy than a 1.09e12-FLOP one). CPU time counts only the cycles this process ran, on
    every thread; data-loader worker processes are not included.
    """

    def __init__(self, watts_per_core: float, basis: str, *, clock: Clock = time.perf_counter,
                 cpu_clock: Clock = time.process_time) -> None:
        if not watts_per_core > 0:
            raise EnergyMeterError(f"per-core watts must be > 0, got {watts_per_core}")
        self.watts_per_core = watts_per_core
        self.source = f"estimate: {watts_per_core:g} W per core x process CPU time ({basis})"
        self._window = Window(clock)
        self._cpu_clock = cpu_clock
        self._cpu0 = 0.0

    def start(self) -> None:
        self._window.begin()
        self._cpu0 = self._cpu_clock()

    def read(self) -> EnergyReading:
        seconds = self._window.elapsed("CPU-time estimate")
        return EnergyReading(self.watts_per_core * (self._cpu_clock() - self._cpu0), seconds, self.source)

    def stop(self) -> EnergyReading:
        return self.read()
