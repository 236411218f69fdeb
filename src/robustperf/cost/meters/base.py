"""What every energy meter shares: the reading, the meter protocol, the error, the window clock, the registry.

A meter measures one window at a time (``start()``, any number of ``read()``, ``stop()``) and returns an
`EnergyReading`; `robustperf.store.session` knows meters by this shape only (its ``Meter``/``Reading``
protocols), so `EnergyMeter` and `EnergyReading` must keep satisfying them. Meters are built by name through
`ENERGY_METERS` (the registrations are listed in `robustperf.cost.meters`, ``create_meter`` is the front door).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from robustperf.registry import Registry

Clock = Callable[[], float]


class EnergyMeterError(ValueError):
    """A meter that cannot be used here; the message names the fix."""


@dataclass(frozen=True)
class EnergyReading:
    """Energy and wall time over one metered window.

    Attributes:
        joules: energy drawn by the metered device(s); None when the meter measures time only.
        seconds: wall-clock seconds of the window.
        source: which meter produced it ("nvml", "sampling", "rapl", "fake", "none", or
            "estimate: <watts and where they come from>").
        idle_watts: idle baseline of the device if one was measured (not subtracted from ``joules``).
        n_devices: how many devices' energy is summed in ``joules``.
    """

    joules: float | None
    seconds: float
    source: str
    idle_watts: float | None = None
    n_devices: int = 1

    @property
    def watts(self) -> float | None:
        """Mean power over the window."""
        if self.joules is None or self.seconds <= 0:
            return None
        return self.joules / self.seconds

    @property
    def joules_above_idle(self) -> float | None:
        """Joules minus the idle baseline (what the work itself added), if a baseline is known."""
        if self.joules is None or self.idle_watts is None:
            return None
        return self.joules - self.idle_watts * self.seconds * self.n_devices

    def to_dict(self) -> dict[str, Any]:
        return {
            "joules": self.joules,
            "seconds": self.seconds,
            "source": self.source,
            "idle_watts": self.idle_watts,
            "n_devices": self.n_devices,
        }


@runtime_checkable
class EnergyMeter(Protocol):
    """Meters one window at a time: ``start()``, any number of ``read()``, then ``stop()``."""

    source: str

    def start(self) -> None:
        """Begin a window (resets the totals)."""

    def read(self) -> EnergyReading:
        """Running totals since ``start()`` without ending the window."""

    def stop(self) -> EnergyReading:
        """End the window and return its totals."""


# name -> factory ``(device_index=None, **options) -> EnergyMeter``; a factory with a ``watts`` parameter is
# handed the stated power (``cost.watts`` / ``--watts``), one without it never sees it
ENERGY_METERS: Registry[Callable[..., EnergyMeter]] = Registry("energy meter")


class Window:
    """Start time bookkeeping shared by the meters."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._t0: float | None = None

    def begin(self) -> None:
        self._t0 = self._clock()

    def elapsed(self, what: str) -> float:
        if self._t0 is None:
            raise RuntimeError(f"{what}: call start() before read()/stop()")
        return self._clock() - self._t0


# the sources of meters that measure (a new measuring meter adds its source here)
METERED_SOURCES = frozenset({"nvml", "sampling", "rapl"})


def energy_method(source: str | None) -> str:
    """What kind of number a reading's ``source`` stands for: metered, estimated, fake or none."""
    if source is None or source == "none":
        return "none"
    if source.startswith("estimate"):
        return "estimated"
    if source == "fake":
        return "fake"
    return "metered" if source.split(":")[0] in METERED_SOURCES else "unknown"

