"""The "fake" meter: a constant draw, ``joules = watts x seconds``, for CPU tests and CI."""

from __future__ import annotations

import time
from dataclasses import dataclass

from robustperf.cost.meters.base import Clock, EnergyMeterError, EnergyReading, Window


@dataclass(frozen=True)
class FakeMeterConfig:
    """A constant draw: joules = watts x elapsed seconds. For CPU tests and CI only."""

    watts: float = 300.0

    def __post_init__(self) -> None:
        if self.watts < 0:
            raise EnergyMeterError(f"fake meter watts must be >= 0, got {self.watts}")


class FakeMeter:
    """Deterministic given the clock: ``joules = watts * seconds`` (inject ``clock`` in tests)."""

    source = "fake"

    def __init__(self, config: FakeMeterConfig | None = None, *, clock: Clock = time.perf_counter) -> None:
        self.config = config or FakeMeterConfig()
        self._window = Window(clock)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        seconds = self._window.elapsed("fake meter")
        return EnergyReading(self.config.watts * seconds, seconds, self.source)

    def stop(self) -> EnergyReading:
        return self.read()


def build(device_index: int | None = None, watts: float = 300.0) -> FakeMeter:
    """The registered factory (``create_meter("fake", watts=...)``)."""
    return FakeMeter(FakeMeterConfig(watts=watts))
