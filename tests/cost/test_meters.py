"""The meter seam: one interface, one registry; a meter defined anywhere is built by name through create_meter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from robustperf.cost import energy
from robustperf.cost.meters import ENERGY_METERS, create_meter
from robustperf.cost.meters.base import EnergyMeter, EnergyReading, Window, energy_method
from robustperf.store.session import Meter, RunSession


@dataclass(frozen=True)
class ConstantDrawConfig:
    watts: float


class ConstantDrawMeter:
    """A meter written outside `robustperf.cost.meters`: a stated draw, labelled as its own source."""

    source = "constant-draw"

    def __init__(self, config: ConstantDrawConfig, device_index: int | None) -> None:
        self.config, self.device_index = config, device_index
        self._window = Window(time.perf_counter)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        seconds = self._window.elapsed("constant-draw meter")
        return EnergyReading(self.config.watts * seconds, seconds, self.source)

    def stop(self) -> EnergyReading:
        return self.read()


def build_constant_draw(device_index: int | None = None, watts: float = 5.0) -> ConstantDrawMeter:
    return ConstantDrawMeter(ConstantDrawConfig(watts), device_index)


def build_counter_only(device_index: int | None = None) -> ConstantDrawMeter:
    """A factory without a ``watts`` parameter: create_meter must not hand it the stated power."""
    return ConstantDrawMeter(ConstantDrawConfig(1.0), device_index)


@pytest.fixture
def registered() -> Iterator[None]:
    ENERGY_METERS.register("test-constant-draw", build_constant_draw)
    ENERGY_METERS.register("test-counter-only", build_counter_only)
    try:
        yield
    finally:
        ENERGY_METERS._items.pop("test-constant-draw", None)
        ENERGY_METERS._items.pop("test-counter-only", None)


def test_a_meter_registered_from_a_test_module_is_built_by_name(registered: None) -> None:
    assert "test-constant-draw" in ENERGY_METERS.names()
    meter = create_meter("test-constant-draw", watts=40.0, device_index=3)
    assert isinstance(meter, ConstantDrawMeter)
    assert meter.config.watts == 40.0 and meter.device_index == 3  # the stated power and device reach it
    assert isinstance(meter, EnergyMeter)
    meter.start()
    reading = meter.stop()
    assert reading.source == "constant-draw" and reading.joules == pytest.approx(40.0 * reading.seconds)
    # the public import sees the same registry
    assert isinstance(energy.create_meter("test-constant-draw"), ConstantDrawMeter)
    assert energy_method(reading.source) == "unknown"  # it did not add itself to METERED_SOURCES


def test_watts_reach_only_factories_that_take_them(registered: None) -> None:
    meter = create_meter("test-counter-only", watts=40.0)  # no TypeError: the stated power is not passed
    assert isinstance(meter, ConstantDrawMeter) and meter.config.watts == 1.0
    with pytest.raises(energy.EnergyMeterError, match="bad option"):
        create_meter("test-counter-only", volts=3.0)


def test_built_in_meters_are_registered_once_and_keep_their_public_names() -> None:
    assert {"auto", "estimate", "fake", "none", "nvml", "rapl", "sampling"} <= set(ENERGY_METERS.names())
    assert energy.ENERGY_METERS is ENERGY_METERS
    assert create_meter("estimate", watts=65.0).source.startswith("estimate: 65 W")  # stated power handed on
    assert isinstance(create_meter("fake", watts=10.0), energy.FakeMeter)
    assert create_meter("fake", watts=10.0).config.watts == 10.0  # type: ignore[attr-defined]


def test_a_session_takes_any_registered_meter(tmp_path, registered: None) -> None:
    from robustperf.store.record import RunDir

    meter: Meter = create_meter("test-constant-draw", watts=2.0)
    session = RunSession.open(RunDir.for_run(tmp_path, "run-a"), {"x": 1})
    session.start_meter(meter)
    reading = session.stop_meter()
    assert reading.source == "constant-draw" and reading.joules is not None
