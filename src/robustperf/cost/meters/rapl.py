"""The "rapl" meter: the CPU's RAPL counters (Linux powercap), package and DRAM domains.

``/sys/class/powercap/intel-rapl:*/energy_uj``: wrap-around at ``max_energy_range_uj`` is handled, and a
thread polls the counters so a long window cannot wrap twice unseen. Since Linux 5.10 ``energy_uj`` is
often readable by root only; `rapl_unavailable_reason` says so and names the fix.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from robustperf.cost.meters.base import Clock, EnergyMeterError, EnergyReading, Window

log = logging.getLogger(__name__)

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


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
        self._window = Window(clock)
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


def build(
    device_index: int | None = None, powercap_root: str = DEFAULT_POWERCAP_ROOT, poll_interval_s: float | None = 10.0
) -> RaplMeter:
    """The registered factory (``create_meter("rapl", powercap_root=..., poll_interval_s=...)``)."""
    return RaplMeter(RaplMeterConfig(powercap_root, poll_interval_s))
