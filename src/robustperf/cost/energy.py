"""Energy meters: joules and seconds over a window of work (an epoch, an evaluation).

REFERENCE.md section 3 ("Energy"): the best primitive on Volta and newer GPUs is
NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules,
updated about every 100 ms on an H100). GPUs without the counter fall back to
sampling ``nvmlDeviceGetPowerUsage`` on a thread and integrating with the
trapezoid rule (1-s sampling read 1.8 % low on a bursty load, so we sample at
10 Hz). NVML ignores ``CUDA_VISIBLE_DEVICES``, so devices are mapped by UUID.
Windows should be >= 1 s; in DDP every rank meters its own GPU and
`sum_across_ranks` adds the joules.

Usage::

    meter = create_meter("auto")
    meter.start()
    ...  # one epoch
    reading = meter.stop()  # EnergyReading(joules=..., seconds=..., source="nvml")

Without an NVIDIA GPU, ``auto`` reads the CPU's RAPL counters (Linux powercap,
``/sys/class/powercap/intel-rapl:*/energy_uj``: package and DRAM domains, wrap-around
at ``max_energy_range_uj`` handled, polled on a thread so a long window cannot wrap
twice unseen). Where no counter can be read (many VMs, or ``energy_uj`` readable by
root only since Linux 5.10), it falls back to an *estimate*: a stated power (``watts``,
``cost.watts``) or the hardware's rated power (GPU datasheet TDP; CPU: 12 W per core in
use, Green Algorithms' default) times the measured time, as codecarbon does when it has
no counter. An estimate's ``source`` starts with ``"estimate:"`` and says what power it
assumed and why, and that string is what the run record stores; `energy_method` maps a
source to metered / estimated / none.

``pynvml`` (package ``nvidia-ml-py``, extra ``robustperf[gpu]``) is imported lazily.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from robustperf.registry import Registry

log = logging.getLogger(__name__)

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


ENERGY_METERS: Registry[Callable[..., EnergyMeter]] = Registry("energy meter")


class _Window:
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


# ---------------------------------------------------------------------------- time-only and fake meters


@dataclass(frozen=True)
class NoneMeterConfig:
    """No energy source: wall time only."""


class NoneMeter:
    """Measures seconds only (``joules=None``); the default on machines without a GPU."""

    source = "none"

    def __init__(self, config: NoneMeterConfig | None = None, *, clock: Clock = time.perf_counter) -> None:
        self.config = config or NoneMeterConfig()
        self._window = _Window(clock)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        return EnergyReading(None, self._window.elapsed("none meter"), self.source)

    def stop(self) -> EnergyReading:
        return self.read()


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
        self._window = _Window(clock)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        seconds = self._window.elapsed("fake meter")
        return EnergyReading(self.config.watts * seconds, seconds, self.source)

    def stop(self) -> EnergyReading:
        return self.read()


# ---------------------------------------------------------------------------- NVML


def import_pynvml() -> Any:
    """Import ``pynvml`` (from ``nvidia-ml-py``) or explain how to install it."""
    try:
        import pynvml
    except ImportError as exc:
        raise EnergyMeterError(
            "energy meter 'nvml' needs the NVIDIA management library bindings: pip install 'robustperf[gpu]' "
            "(nvidia-ml-py), or set cost.energy_meter=none"
        ) from exc
    return pynvml


def nvml_init(pynvml: Any) -> None:
    """``nvmlInit`` with a message that names the fix when there is no driver or GPU."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise EnergyMeterError(
            f"NVML could not start ({exc}): no NVIDIA driver or GPU here; use cost.energy_meter=none (or fake in tests)"
        ) from exc


def visible_device_id(device_index: int, visible: str | None) -> int | str:
    """The NVML identity (physical index or UUID) of logical CUDA device ``device_index``.

    NVML enumerates every GPU on the node and ignores ``CUDA_VISIBLE_DEVICES``
    (REFERENCE.md section 3), so logical index 0 under ``CUDA_VISIBLE_DEVICES=3``
    is NVML index 3. Entries may be indices or UUIDs (``GPU-...``).

    Args:
        device_index: the logical CUDA index the process uses (``cuda:N``).
        visible: the value of ``CUDA_VISIBLE_DEVICES`` (None when unset).

    Returns:
        An int physical index, or a UUID string.
    """
    if visible is None or visible.strip() == "":
        return device_index
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if device_index >= len(entries):
        raise EnergyMeterError(
            f"cuda:{device_index} is not among CUDA_VISIBLE_DEVICES={visible!r}; pick a device index < {len(entries)}"
        )
    entry = entries[device_index]
    if entry.startswith("MIG-"):
        raise EnergyMeterError(
            f"device {entry} is a MIG slice; NVML reports energy per physical GPU only - use cost.energy_meter=none"
        )
    return int(entry) if entry.isdigit() else entry


def _torch_uuid(device_index: int) -> str | None:
    """UUID of a logical CUDA device as torch sees it (exact even with CUDA_DEVICE_ORDER quirks)."""
    import sys

    torch = sys.modules.get("torch")  # only if the caller already imported torch; never import it here
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
    except (RuntimeError, AttributeError, AssertionError):
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def nvml_handle(pynvml: Any, device_index: int | None) -> Any:
    """The NVML handle of a logical CUDA device, matched by UUID where possible."""
    index = 0 if device_index is None else device_index
    uuid = _torch_uuid(index)
    ident: int | str = uuid if uuid is not None else visible_device_id(index, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if isinstance(ident, str) and ident.startswith("MIG-"):
        raise EnergyMeterError(f"cuda:{index} is a MIG slice ({ident}); NVML meters whole GPUs only - use none")
    if isinstance(ident, str):
        return pynvml.nvmlDeviceGetHandleByUUID(ident)
    return pynvml.nvmlDeviceGetHandleByIndex(ident)


@dataclass(frozen=True)
class NvmlMeterConfig:
    """NVML total-energy counter of one GPU."""

    device_index: int | None = None


class NvmlMeter:
    """Reads the GPU's cumulative energy counter (mJ) at start and at each read."""

    source = "nvml"

    def __init__(self, config: NvmlMeterConfig | None = None, *, clock: Clock = time.perf_counter) -> None:
        self.config = config or NvmlMeterConfig()
        self._window = _Window(clock)
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


# ---------------------------------------------------------------------------- power sampling


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


# ---------------------------------------------------------------------------- RAPL (Linux powercap)

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
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


@dataclass(frozen=True)
class RaplDomain:
    """One powercap zone whose energy we count.

    Attributes:
        name: the zone's ``name`` file ("package-0", "dram").
        path: the zone directory (holds ``energy_uj`` and ``max_energy_range_uj``).
        max_range_uj: the counter wraps to 0 after this many microjoules.
    """

    name: str
    path: Path
    max_range_uj: int


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def discover_rapl(root: str | Path = DEFAULT_POWERCAP_ROOT) -> list[RaplDomain]:
    """The package and DRAM zones under a powercap root (empty if there are none).

    Top-level ``intel-rapl:N`` zones are CPU packages; their ``dram`` sub-zones are
    added. ``core``/``uncore`` sub-zones are parts of the package and ``psys`` (the
    whole SoC on laptops) overlaps the packages, so neither is counted.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    domains: list[RaplDomain] = []
    seen: set[Path] = set()
    # sysfs lists every zone at the top level (symlinks) and nests sub-zones in their parent: take each once.
    for zone in sorted([*base.glob("intel-rapl:*"), *base.glob("intel-rapl:*/intel-rapl:*")], key=lambda z: z.name):
        real = zone.resolve()
        if real in seen:
            continue
        seen.add(real)
        parts = zone.name.split(":")
        if not (zone / "energy_uj").exists() or not (zone / "name").exists():
            continue
        name = (zone / "name").read_text().strip()
        is_package = len(parts) == 2 and name.startswith("package")
        is_dram = len(parts) == 3 and name == "dram"
        if not (is_package or is_dram):
            continue
        try:
            max_range = _read_int(zone / "max_energy_range_uj")
        except (OSError, ValueError):
            max_range = 0
        domains.append(RaplDomain(name, zone, max_range))
    return domains


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Microjoules between two readings of one counter, allowing one wrap-around."""
    if after >= before:
        return after - before
    if max_range_uj <= 0:
        raise EnergyMeterError("RAPL counter went backwards and max_energy_range_uj is unknown: cannot unwrap it")
    return after + max_range_uj - before


@dataclass(frozen=True)
class RaplMeterConfig:
    """RAPL package + DRAM counters of the CPU(s).

    Attributes:
        root: the powercap directory (tests point this at a fake tree).
        poll_interval_s: a thread reads the counters this often so no counter can wrap twice
            between reads (at 200 W a 262 kJ counter wraps every ~22 min); None: only on read().
    """

    root: str = DEFAULT_POWERCAP_ROOT
    poll_interval_s: float | None = 10.0

    def __post_init__(self) -> None:
        if self.poll_interval_s is not None and not 0.01 <= self.poll_interval_s <= 600:
            raise EnergyMeterError(f"rapl poll_interval_s must be in [0.01, 600] or None, got {self.poll_interval_s}")


def rapl_unavailable_reason(root: str | Path = DEFAULT_POWERCAP_ROOT) -> str | None:
    """Why RAPL cannot be metered under ``root`` (None when it can)."""
    domains = discover_rapl(root)
    if not domains:
        return f"no RAPL package zones under {root}"
    for d in domains:
        try:
            _read_int(d.path / "energy_uj")
        except PermissionError:
            return (
                f"{d.path / 'energy_uj'} is readable by root only (Linux >= 5.10); "
                f"`sudo chmod o+r {Path(root)}/intel-rapl:*/energy_uj {Path(root)}/intel-rapl:*/*/energy_uj` to meter"
            )
        except (OSError, ValueError) as exc:
            return f"cannot read {d.path / 'energy_uj'} ({exc})"
    return None


class RaplMeter:
    """Sums the energy of every package and DRAM zone over the window, unwrapping each counter.

    RAPL meters the whole socket: whatever else runs on the CPU during the window is in the joules too
    (measure an idle baseline with `measure_idle_watts` to see how much).
    """

    source = "rapl"

    def __init__(self, config: RaplMeterConfig | None = None, *, clock: Clock = time.perf_counter) -> None:
        self.config = config or RaplMeterConfig()
        self._window = _Window(clock)
        self._domains: list[RaplDomain] = []
        self._last: list[int] = []
        self._total_uj = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def domains(self) -> list[RaplDomain]:
        return list(self._domains)

    def start(self) -> None:
        reason = rapl_unavailable_reason(self.config.root)
        if reason is not None:
            raise EnergyMeterError(f"RAPL meter: {reason}; or use cost.energy_meter=estimate")
        self._domains = discover_rapl(self.config.root)
        with self._lock:
            self._last = [_read_int(d.path / "energy_uj") for d in self._domains]
            self._total_uj = 0
        self._window.begin()
        self._stop.clear()
        if self.config.poll_interval_s is not None:
            self._thread = threading.Thread(target=self._loop, name="robustperf-rapl", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        with self._lock:
            for i, d in enumerate(self._domains):
                now = _read_int(d.path / "energy_uj")
                self._total_uj += rapl_delta_uj(self._last[i], now, d.max_range_uj)
                self._last[i] = now

    def _loop(self) -> None:
        interval = self.config.poll_interval_s or 10.0
        while not self._stop.wait(interval):
            try:
                self._poll()
            except (OSError, ValueError, EnergyMeterError) as exc:  # keep metering; read() raises if it persists
                log.warning("RAPL poll failed: %s", exc)

    def read(self) -> EnergyReading:
        if not self._last:
            raise RuntimeError("rapl meter: call start() before read()/stop()")
        seconds = self._window.elapsed("rapl meter")
        self._poll()
        return EnergyReading(self._total_uj / 1e6, seconds, self.source, n_devices=len(self._domains))

    def stop(self) -> EnergyReading:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.read()


# ---------------------------------------------------------------------------- estimate (stated power x time)


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
        self._window = _Window(clock)

    def start(self) -> None:
        self._window.begin()

    def read(self) -> EnergyReading:
        seconds = self._window.elapsed("estimate meter")
        return EnergyReading(self.config.watts * seconds, seconds, self.source)

    def stop(self) -> EnergyReading:
        return self.read()


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
        self._window = _Window(clock)
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


def _estimate(device_index: int | None = None, watts: float | None = None) -> EstimateMeter | CpuTimeMeter:
    power = estimate_power(watts, device_index=device_index)
    if watts is None and "W/core" in power.basis:  # no stated power, no GPU datasheet: the CPU's share of the work
        from robustperf.cost.constants import CPU_WATTS_PER_CORE

        per_core = CPU_WATTS_PER_CORE
        return CpuTimeMeter(per_core.value, f"Green Algorithms default per-core power, {per_core.year}; DRAM not "
                                            "included")
    return EstimateMeter(EstimateMeterConfig(power.watts, power.basis))


# ---------------------------------------------------------------------------- factory and helpers


def _gpu_present() -> bool:
    """Whether NVML sees at least one GPU (False when pynvml or the driver is missing)."""
    try:
        pynvml = import_pynvml()
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - any NVML/driver failure means "no GPU to meter"
        return False
    try:
        return pynvml.nvmlDeviceGetCount() > 0
    finally:
        pynvml.nvmlShutdown()


def _counter_supported(device_index: int | None) -> bool:
    pynvml = import_pynvml()
    nvml_init(pynvml)
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(nvml_handle(pynvml, device_index))
        return True
    except pynvml.NVMLError:
        return False
    finally:
        pynvml.nvmlShutdown()


def _auto(
    device_index: int | None = None,
    watts: float | None = None,
    powercap_root: str = DEFAULT_POWERCAP_ROOT,
    **kwargs: Any,
) -> EnergyMeter:
    """The best meter here: NVML counter, else NVML power sampling, else RAPL, else an estimate.

    A stated ``watts`` is used only by the estimate (a meter that can measure does).
    """
    if _gpu_present():
        if _counter_supported(device_index):
            return NvmlMeter(NvmlMeterConfig(device_index=device_index))
        log.info("GPU has no NVML energy counter: falling back to power sampling")
        return SamplingMeter(SamplingMeterConfig(device_index=device_index, **kwargs))
    reason = rapl_unavailable_reason(powercap_root)
    if reason is None:
        log.info("no NVIDIA GPU visible to NVML: metering the CPU with RAPL")
        return RaplMeter(RaplMeterConfig(root=powercap_root))
    meter = _estimate(device_index, watts)
    log.info("no NVIDIA GPU and no RAPL counter (%s): energy is an %s", reason, meter.source)
    return meter


ENERGY_METERS.register("none", lambda device_index=None: NoneMeter())
ENERGY_METERS.register("fake", lambda device_index=None, watts=300.0: FakeMeter(FakeMeterConfig(watts=watts)))
ENERGY_METERS.register("nvml", lambda device_index=None: NvmlMeter(NvmlMeterConfig(device_index=device_index)))
ENERGY_METERS.register(
    "sampling",
    lambda device_index=None, interval_s=0.1: SamplingMeter(SamplingMeterConfig(device_index, interval_s)),
)
ENERGY_METERS.register(
    "rapl",
    lambda device_index=None, powercap_root=DEFAULT_POWERCAP_ROOT, poll_interval_s=10.0: RaplMeter(
        RaplMeterConfig(powercap_root, poll_interval_s)
    ),
)
ENERGY_METERS.register("estimate", _estimate)
ENERGY_METERS.register("auto", _auto)
_TAKES_WATTS = {"auto", "estimate", "fake"}


def create_meter(
    name: str = "auto", *, device_index: int | None = None, watts: float | None = None, **kwargs: Any
) -> EnergyMeter:
    """Build an energy meter by name: "auto", "nvml", "sampling", "rapl", "estimate", "fake" or "none".

    Construction does no work; "nvml", "sampling" and "rapl" touch the hardware in ``start()``
    ("auto" probes NVML and the powercap tree here to decide).

    Args:
        name: meter name (``cost.energy_meter`` in the run config).
        device_index: logical CUDA index to meter (None: device 0 / torch's current device).
        watts: stated mean power for "estimate" (and for "auto" when it falls back to an estimate;
            "fake" draws it); meters that measure ignore it.
        **kwargs: meter options, e.g. ``interval_s`` for "sampling", ``powercap_root`` for "rapl"/"auto".
    """
    factory = ENERGY_METERS.get(name)
    if name == "nvml":
        import_pynvml()  # fail before any work with the install hint
    if watts is not None and name in _TAKES_WATTS:
        kwargs["watts"] = watts
    try:
        return factory(device_index=device_index, **kwargs)
    except TypeError as exc:
        raise EnergyMeterError(f"energy meter {name!r}: bad option in {sorted(kwargs)} ({exc})") from None


def measure_idle_watts(
    meter: EnergyMeter, seconds: float = 2.0, *, sleep: Callable[[float], None] = time.sleep
) -> float | None:
    """Mean power of an idle device over ``seconds`` (run it before the work starts).

    Returns:
        Idle watts, or None when the meter measures time only.
    """
    meter.start()
    sleep(seconds)
    reading = meter.stop()
    return reading.watts


def with_idle(reading: EnergyReading, idle_watts: float | None) -> EnergyReading:
    """The reading with its idle baseline attached (the raw joules are kept as measured)."""
    return replace(reading, idle_watts=idle_watts)


def sum_across_ranks(reading: EnergyReading, *, device: Any = None) -> EnergyReading:
    """Sum joules over DDP ranks (each rank meters its own GPU); seconds is the slowest rank's.

    Without an initialised process group the reading is returned as is. If any
    rank measured time only, the sum is ``None`` (a partial sum would mislead).

    Args:
        reading: this rank's reading.
        device: where to put the reduction tensor (the rank's CUDA device for NCCL).
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return reading
    have = 0.0 if reading.joules is None else 1.0
    joules = torch.tensor([reading.joules or 0.0, have], dtype=torch.float64, device=device)
    seconds = torch.tensor([reading.seconds], dtype=torch.float64, device=device)
    dist.all_reduce(joules, op=dist.ReduceOp.SUM)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    world = dist.get_world_size()
    total = float(joules[0]) if int(joules[1]) == world else None
    return EnergyReading(total, float(seconds[0]), reading.source, reading.idle_watts, n_devices=world)
