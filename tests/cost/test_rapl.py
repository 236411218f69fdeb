"""RAPL meter on a fake powercap tree (wrap-around, package + DRAM, unreadable counters) and the estimate fallback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from robustperf.cost.energy import (
    CpuTimeMeter,
    EnergyMeterError,
    EstimateMeter,
    RaplMeter,
    RaplMeterConfig,
    create_meter,
    discover_rapl,
    energy_method,
    estimate_power,
    rapl_delta_uj,
)
from robustperf.cost.meters import auto, estimate, rapl

MAX_RANGE = 262_143_328_850  # a real Intel package counter's max_energy_range_uj


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _zone(path: Path, name: str, energy_uj: int, max_range: int = MAX_RANGE) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    return path


def _set(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Two sockets with DRAM sub-zones, plus core/uncore sub-zones and a psys zone that must not be counted."""
    root = tmp_path / "powercap"
    zones = {
        "pkg0": _zone(root / "intel-rapl:0", "package-0", 1_000_000),
        "core0": _zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000),
        "dram0": _zone(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 2_000_000),
        "pkg1": _zone(root / "intel-rapl:1", "package-1", MAX_RANGE - 3_000_000),  # about to wrap
        "dram1": _zone(root / "intel-rapl:1" / "intel-rapl:1:2", "dram", 0),
        "psys": _zone(root / "intel-rapl:2", "psys", 9_000_000),
        "mmio": _zone(root / "intel-rapl-mmio:0", "package-0", 7_000_000),  # same package via MMIO: not twice
    }
    # Real trees expose nested zones at the top level too (symlinks); the glob must not double count them.
    (root / "intel-rapl:0:1").symlink_to(zones["dram0"])
    zones["root"] = root
    return zones


def test_discover_counts_packages_and_dram_only(tree: dict[str, Path]) -> None:
    names = sorted(d.name for d in discover_rapl(tree["root"]))
    assert names == ["dram", "dram", "package-0", "package-1"]
    assert discover_rapl(tree["root"] / "missing") == []


def test_delta_unwraps_one_wrap() -> None:
    assert rapl_delta_uj(100, 250, MAX_RANGE) == 150
    assert rapl_delta_uj(MAX_RANGE - 10, 5, MAX_RANGE) == 15
    with pytest.raises(EnergyMeterError, match="max_energy_range_uj"):
        rapl_delta_uj(100, 50, 0)


def test_rapl_meter_sums_domains_across_a_wrap(tree: dict[str, Path]) -> None:
    clock = Clock()
    meter = RaplMeter(RaplMeterConfig(str(tree["root"]), poll_interval_s=None), clock=clock)
    meter.start()
    _set(tree["pkg0"], 1_000_000 + 40_000_000)  # +40 J
    _set(tree["dram0"], 2_000_000 + 5_000_000)  # +5 J
    _set(tree["pkg1"], 7_000_000)  # wrapped: 3 J to the top, then 7 J = +10 J
    _set(tree["dram1"], 1_500_000)  # +1.5 J
    _set(tree["core0"], 99_000_000)  # inside the package: ignored
    _set(tree["psys"], 999_000_000)  # overlaps the packages: ignored
    clock.now += 2.0
    first = meter.read()
    assert first.joules == pytest.approx(56.5)
    assert first.seconds == pytest.approx(2.0) and first.source == "rapl" and first.n_devices == 4
    _set(tree["pkg1"], 17_000_000)  # +10 J after the wrap
    clock.now += 1.0
    reading = meter.stop()
    assert reading.joules == pytest.approx(66.5)
    assert reading.watts == pytest.approx(66.5 / 3.0)


def test_polling_thread_catches_two_wraps_between_reads(tree: dict[str, Path]) -> None:
    small = 1_000_000  # a 1 J counter: wraps constantly
    root = tree["root"].parent / "small"
    zone = _zone(root / "intel-rapl:0", "package-0", 0, max_range=small)
    meter = RaplMeter(RaplMeterConfig(str(root), poll_interval_s=0.01))
    meter.start()
    for value in (600_000, 100_000, 800_000, 300_000):  # three wraps, each step < one range
        _set(zone, value)
        deadline = time.monotonic() + 10.0
        while meter._last[0] != value and time.monotonic() < deadline:  # the poller (every 10 ms) saw it
            time.sleep(0.005)
    reading = meter.stop()
    # 0 -> 0.6 (+0.6) -> 0.1 (+0.5) -> 0.8 (+0.7) -> 0.3 (+0.5) = 2.3 J; a read only at the end would see 0.3 J.
    assert reading.joules == pytest.approx(2.3)


def test_unreadable_counter_names_the_fix(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real = rapl._read_int

    def denied(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "_read_int", denied)
    with pytest.raises(EnergyMeterError, match="chmod o\\+r"):
        RaplMeter(RaplMeterConfig(str(tree["root"]), poll_interval_s=None)).start()
    # auto falls back to an estimate and says so
    monkeypatch.setattr(auto, "_gpu_present", lambda: False)
    meter = create_meter("auto", powercap_root=str(tree["root"]), watts=40.0)
    assert isinstance(meter, EstimateMeter)


def test_auto_picks_rapl_without_gpu(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "_gpu_present", lambda: False)
    meter = create_meter("auto", powercap_root=str(tree["root"]))
    assert isinstance(meter, RaplMeter)
    meter.start()
    assert meter.stop().source == "rapl"


def test_auto_without_counters_estimates_from_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "_gpu_present", lambda: False)
    monkeypatch.setattr(estimate, "_cores_in_use", lambda: 3)
    clock = Clock()
    meter = create_meter("auto", powercap_root=str(tmp_path / "none"))
    # issue 27: per-core power x the process's CPU time, not cores x wall time (which tracks machine load)
    assert isinstance(meter, CpuTimeMeter)
    cpu = Clock()
    meter._window._clock = clock  # deterministic seconds
    meter._cpu_clock = cpu
    meter.start()
    clock.now += 10.0
    cpu.now += 4.0  # 4 CPU-seconds of work in a 10 s window
    reading = meter.stop()
    assert reading.joules == pytest.approx(12.0 * 4.0) and reading.seconds == pytest.approx(10.0)
    assert reading.source.startswith("estimate: 12 W per core x process CPU time")
    assert "Green Algorithms" in reading.source
    assert energy_method(reading.source) == "estimated"


def test_stated_watts_win_and_are_labelled() -> None:
    meter = create_meter("estimate", watts=65.0)
    assert meter.source == "estimate: 65 W = stated power 65 W (cost.watts / --watts)"
    assert estimate_power(None, n_cores=2).watts == pytest.approx(24.0)
    with pytest.raises(EnergyMeterError, match="watts"):
        estimate_power(-1.0)


def test_energy_method_labels() -> None:
    assert [energy_method(s) for s in ("nvml", "sampling", "rapl", "fake", "none", None)] == [
        "metered", "metered", "metered", "fake", "none", "none",
    ]
    assert energy_method("estimate: 700 W board power") == "estimated"


def test_run_cost_records_estimated_vs_metered() -> None:
    from robustperf.config import CostConfig
    from robustperf.cost.accounting import run_cost

    est = run_cost(CostConfig(), seconds=10.0, samples_seen=1, flops_per_sample=1.0, joules=240.0,
                   energy_source="estimate: 24 W = 12 W/core x 2 CPU core(s)")
    assert est["energy_method"] == "estimated" and est["energy_source"].startswith("estimate: 24 W")
    assert est["energy_kwh"] == pytest.approx(240.0 / 3.6e6 * 1.58)
    metered = run_cost(CostConfig(), seconds=1.0, samples_seen=1, flops_per_sample=1.0, joules=5.0, energy_source="rapl")
    assert metered["energy_method"] == "metered"
    none = run_cost(CostConfig(), seconds=1.0, samples_seen=1, flops_per_sample=1.0, joules=None, energy_source="none")
    assert none["energy_method"] == "none" and none["energy_kwh"] is None


def test_estimate_uses_the_gpu_datasheet_tdp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "_gpu_name", lambda index: "NVIDIA H100 80GB HBM3")
    power = estimate_power(None, device_index=0)
    assert power.watts == 700.0 and "H100" in power.basis
    monkeypatch.setattr(estimate, "_gpu_name", lambda index: "Some Unknown GPU")
    monkeypatch.setattr(estimate, "_cores_in_use", lambda: 4)
    assert estimate_power(None, device_index=0).watts == pytest.approx(48.0)  # falls back to CPU cores


def test_cores_in_use_follow_torch_threads() -> None:
    import os

    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert estimate._cores_in_use() == 1
        torch.set_num_threads(64)
        assert estimate._cores_in_use() == len(os.sched_getaffinity(0))  # capped by the CPUs we may run on
    finally:
        torch.set_num_threads(before)
