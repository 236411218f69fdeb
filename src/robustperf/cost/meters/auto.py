"""The "auto" meter: the best one here - NVML counter, else NVML power sampling, else RAPL, else an estimate."""

from __future__ import annotations

import logging
from typing import Any

from robustperf.cost.meters import estimate
from robustperf.cost.meters.base import EnergyMeter
from robustperf.cost.meters.nvml import NvmlMeter, NvmlMeterConfig
from robustperf.cost.meters.nvml_lib import import_pynvml, nvml_handle, nvml_init
from robustperf.cost.meters.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter, RaplMeterConfig, rapl_unavailable_reason
from robustperf.cost.meters.sampling import SamplingMeter, SamplingMeterConfig

log = logging.getLogger(__name__)


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


def build(
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
    meter = estimate.build(device_index, watts)
    log.info("no NVIDIA GPU and no RAPL counter (%s): energy is an %s", reason, meter.source)
    return meter
