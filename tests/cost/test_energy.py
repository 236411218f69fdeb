"""Energy meters: fake/none arithmetic, NVML device mapping and counter math, sampling integration."""

from __future__ import annotations

import sys
import time
import types

import pytest

from robustperf.cost import energy
from robustperf.cost.energy import (
    EnergyMeter,
    EnergyMeterError,
    EnergyReading,
    FakeMeter,
    FakeMeterConfig,
    SamplingMeter,
    SamplingMeterConfig,
    create_meter,
    measure_idle_watts,
    sum_across_ranks,
    trapezoid_joules,
    visible_device_id,
)
from robustperf.registry import RegistryError


class Clock:
    """A manual clock: tests advance it, so fake readings are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fake_meter_is_watts_times_seconds() -> None:
    clock = Clock()
    meter = FakeMeter(FakeMeterConfig(watts=250.0), clock=clock)
    meter.start()
    clock.now += 4.0
    assert meter.read() == EnergyReading(1000.0, 4.0, "fake")
    clock.now += 2.0
    reading = meter.stop()
    assert reading.joules == pytest.approx(1500.0)
    assert reading.watts == pytest.approx(250.0)
    assert isinstance(meter, EnergyMeter)


def test_fake_meter_rejects_negative_watts() -> None:
    with pytest.raises(EnergyMeterError, match="watts"):
        FakeMeterConfig(watts=-1.0)


def test_none_meter_measures_time_only() -> None:
    meter = create_meter("none")
    meter.start()
    time.sleep(0.01)
    reading = meter.stop()
    assert reading.joules is None and reading.watts is None
    assert reading.seconds >= 0.01
    assert reading.source == "none"


def test_read_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        create_meter("fake").read()


def test_create_meter_names_and_options() -> None:
    assert isinstance(create_meter("fake", watts=10.0), FakeMeter)
    with pytest.raises(RegistryError, match="Did you mean 'fake'"):
        create_meter("fak")
    with pytest.raises(EnergyMeterError, match="bad option"):
        create_meter("fake", volts=3)


def test_auto_without_gpu_still_gives_energy() -> None:
    # This CPU machine has nvidia-ml-py but no driver: auto must degrade to RAPL or an estimate, not fail.
    meter = create_meter("auto")
    meter.start()
    reading = meter.stop()
    assert energy.energy_method(reading.source) in {"metered", "estimated"}
    assert reading.joules is not None


def test_nvml_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(EnergyMeterError, match=r"robustperf\[gpu\]"):
        create_meter("nvml")


def test_visible_devices_map_to_physical_ids() -> None:
    assert visible_device_id(1, None) == 1
    assert visible_device_id(0, "3,1") == 3
    assert visible_device_id(1, "3, 1") == 1
    assert visible_device_id(0, "GPU-abc-123") == "GPU-abc-123"
    with pytest.raises(EnergyMeterError, match="CUDA_VISIBLE_DEVICES"):
        visible_device_id(2, "0,1")
    with pytest.raises(EnergyMeterError, match="MIG"):
        visible_device_id(0, "MIG-xyz")


def _fake_pynvml(energy_mj: list[int], power_mw: float = 200_000.0) -> types.ModuleType:
    """A stand-in NVML backend (the allowed fake energy backend) recording which device was asked for."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    mod.NVMLError = NVMLError
    mod.asked: list[object] = []
    mod.nvmlInit = lambda: None
    mod.nvmlShutdown = lambda: None
    mod.nvmlDeviceGetCount = lambda: 4

    def by_index(i: int) -> object:
        mod.asked.append(i)
        return ("idx", i)

    def by_uuid(u: str) -> object:
        mod.asked.append(u)
        return ("uuid", u)

    mod.nvmlDeviceGetHandleByIndex = by_index
    mod.nvmlDeviceGetHandleByUUID = by_uuid
    mod.nvmlDeviceGetTotalEnergyConsumption = lambda h: energy_mj.pop(0)
    mod.nvmlDeviceGetPowerUsage = lambda h: power_mw
    return mod


def test_nvml_meter_converts_millijoules_and_honours_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_pynvml([5_000_000, 5_123_456, 5_500_000])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    clock = Clock()
    meter = energy.NvmlMeter(energy.NvmlMeterConfig(device_index=1), clock=clock)
    meter.start()
    clock.now += 1.0
    assert meter.read().joules == pytest.approx(123.456)
    clock.now += 1.0
    reading = meter.stop()
    assert reading.joules == pytest.approx(500.0) and reading.seconds == pytest.approx(2.0)
    assert fake.asked == [3]  # logical cuda:1 under CUDA_VISIBLE_DEVICES=2,3 is NVML device 3


def test_nvml_without_counter_points_to_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_pynvml([])

    def no_counter(h: object) -> int:
        raise fake.NVMLError("Not Supported")

    fake.nvmlDeviceGetTotalEnergyConsumption = no_counter
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with pytest.raises(EnergyMeterError, match="sampling"):
        energy.NvmlMeter().start()
    assert isinstance(create_meter("auto"), SamplingMeter)


def test_trapezoid_is_exact_for_a_ramp() -> None:
    times = [0.0, 1.0, 2.0, 4.0]
    watts = [100.0, 200.0, 300.0, 500.0]  # 100 + 100 t
    assert trapezoid_joules(times, watts) == pytest.approx(100 * 4 + 50 * 16)


def test_sampling_meter_integrates_a_constant_power() -> None:
    meter = SamplingMeter(SamplingMeterConfig(interval_s=0.01), power_w=lambda: 180.0)
    meter.start()
    time.sleep(0.1)
    running = meter.read()
    reading = meter.stop()
    assert meter.n_samples >= 3
    assert reading.watts == pytest.approx(180.0)
    assert reading.joules >= running.joules > 0


def test_sampling_meter_with_nvml_power(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([], power_mw=75_500.0))
    meter = create_meter("sampling", interval_s=0.01)
    meter.start()
    time.sleep(0.03)
    assert meter.stop().watts == pytest.approx(75.5)


def test_idle_baseline_and_net_joules() -> None:
    clock = Clock()
    meter = FakeMeter(FakeMeterConfig(watts=70.0), clock=clock)

    def sleep(s: float) -> None:
        clock.now += s

    idle = measure_idle_watts(meter, 3.0, sleep=sleep)
    assert idle == pytest.approx(70.0)
    reading = energy.with_idle(EnergyReading(1000.0, 10.0, "nvml"), idle)
    assert reading.joules == 1000.0  # raw joules kept
    assert reading.joules_above_idle == pytest.approx(300.0)


def test_sum_across_ranks_single_process_group(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # skip the hostname lookup gloo does otherwise

    reading = EnergyReading(42.0, 3.0, "fake")
    assert sum_across_ranks(reading) is reading  # no process group: unchanged
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        summed = sum_across_ranks(reading)
        partial = sum_across_ranks(EnergyReading(None, 3.0, "none"))
    finally:
        dist.destroy_process_group()
    assert summed.joules == pytest.approx(42.0) and summed.n_devices == 1
    assert partial.joules is None
