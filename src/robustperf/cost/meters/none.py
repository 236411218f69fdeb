"""The "none" meter: wall time only (``joules=None``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from robustperf.cost.meters.base import Clock, EnergyReading, Window


@dataclass(frozen=True)
class NoneMeterConfig:
    """No energy source: wall time only."""


class NoneMeter:
    """Measures seconds only (``joules=None``); the default on machines without a GPU."""

    source = "none"

    def __init__(self, config: NoneMeterConfig | None = None, *, clock: Clock = time.perf_counter) -> None:
        self.config = config or NoneMeterConfig()
        self._window = Window(clock)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        return EnergyReading(None, self._window.elapsed("none meter"), self.source)

    def stop(self) -> EnergyReading:
        return self.read()


def build(device_index: int | None = None) -> NoneMeter:
    """The registered factory (``create_meter("none")``)."""
    return NoneMeter()
