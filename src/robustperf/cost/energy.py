"""Energy meters, the public import: ``from robustperf.cost.energy import create_meter, EnergyReading, ...``.

The meters live in `robustperf.cost.meters`, one a file behind one interface (`meters.base`); this module
re-exports their public names so callers keep one import. A new meter goes into `robustperf.cost.meters`.
"""

from __future__ import annotations

from robustperf.cost.meters import ENERGY_METERS, create_meter
from robustperf.cost.meters.base import (
    METERED_SOURCES,
    Clock,
    EnergyMeter,
    EnergyMeterError,
    EnergyReading,
    energy_method,
)
from robustperf.cost.meters.combine import measure_idle_watts, sum_across_ranks, with_idle
from robustperf.cost.meters.cpu_time import CpuTimeMeter
from robustperf.cost.meters.estimate import EstimateMeter, EstimateMeterConfig, PowerEstimate, estimate_power
from robustperf.cost.meters.fake import FakeMeter, FakeMeterConfig
from robustperf.cost.meters.none import NoneMeter, NoneMeterConfig
from robustperf.cost.meters.nvml import NvmlMeter, NvmlMeterConfig
from robustperf.cost.meters.nvml_lib import import_pynvml, nvml_handle, nvml_init, visible_device_id
from robustperf.cost.meters.rapl import (
    DEFAULT_POWERCAP_ROOT,
    RaplDomain,
    RaplMeter,
    RaplMeterConfig,
    discover_rapl,
    rapl_delta_uj,
    rapl_unavailable_reason,
)
from robustperf.cost.meters.sampling import SamplingMeter, SamplingMeterConfig, trapezoid_joules

__all__ = [
    "DEFAULT_POWERCAP_ROOT", "ENERGY_METERS", "METERED_SOURCES", "Clock", "CpuTimeMeter", "EnergyMeter",
    "EnergyMeterError", "EnergyReading", "EstimateMeter", "EstimateMeterConfig", "FakeMeter", "FakeMeterConfig",
    "NoneMeter", "NoneMeterConfig", "NvmlMeter", "NvmlMeterConfig", "PowerEstimate", "RaplDomain", "RaplMeter",
    "RaplMeterConfig", "SamplingMeter", "SamplingMeterConfig", "create_meter", "discover_rapl", "energy_method",
    "estimate_power", "import_pynvml", "measure_idle_watts", "nvml_handle", "nvml_init", "rapl_delta_uj",
    "rapl_unavailable_reason", "sum_across_ranks", "trapezoid_joules", "visible_device_id", "with_idle",
]
