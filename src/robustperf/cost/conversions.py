"""Energy, time and FLOPs into kWh, CO2, USD and GPU-hours; pure functions (no torch).

Defaults are the paper-compatible constants of Debenedetti et al. 2023 (REFERENCE.md
section 3; sources in `robustperf.cost.constants`): PUE 1.58, 566.3 gCO2/kWh,
$0.12/kWh. Every function takes the constant as an argument so a caller can
override it, and `resolve_constants` returns the values *with* their sources for
the run record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from robustperf.cost.constants import (
    GRID_DEFAULT,
    MFU_DEFAULT,
    PUE_DEFAULT,
    USD_PER_KWH_DEFAULT,
    Sourced,
    gpu_spec,
    grid_intensity,
)

JOULES_PER_KWH = 3.6e6
SECONDS_PER_HOUR = 3600.0


def joules_to_kwh(joules: float, *, pue: float = PUE_DEFAULT.value) -> float:
    """Energy at the wall in kWh: device joules / 3.6e6 x PUE."""
    if pue < 1.0:
        raise ValueError(f"PUE is >= 1 by definition, got {pue}")
    return joules / JOULES_PER_KWH * pue


def kwh_to_co2_kg(kwh: float, *, g_per_kwh: float | None = None, grid: str = GRID_DEFAULT) -> float:
    """kg CO2-equivalent of ``kwh`` at a grid intensity (explicit g/kWh, else the ``grid`` preset)."""
    intensity = grid_intensity(grid).value if g_per_kwh is None else g_per_kwh
    return kwh * intensity / 1000.0


def electricity_usd(kwh: float, *, usd_per_kwh: float = USD_PER_KWH_DEFAULT.value) -> float:
    """Electricity bill in USD."""
    return kwh * usd_per_kwh


def gpu_hours_usd(gpu_hours: float, *, usd_per_gpu_hour: float) -> float:
    """Cloud rental cost in USD (prices in ``constants.GPU_HOUR_PRICES``)."""
    return gpu_hours * usd_per_gpu_hour


def gpu_hours(seconds: float, *, n_gpus: int = 1) -> float:
    """GPU-hours of a measured wall time on ``n_gpus`` devices."""
    return seconds * n_gpus / SECONDS_PER_HOUR


def gpu_hours_from_throughput(n_samples: float, samples_per_second: float, *, n_gpus: int = 1) -> float:
    """GPU-hours to process ``n_samples`` at a measured aggregate throughput on ``n_gpus`` devices."""
    if samples_per_second <= 0:
        raise ValueError(f"samples_per_second must be > 0, got {samples_per_second}")
    return gpu_hours(n_samples / samples_per_second, n_gpus=n_gpus)


def peak_flops_per_second(gpu: str) -> float:
    """Dense bf16/fp16 tensor peak of a named GPU in FLOP/s (``constants.GPUS``)."""
    return gpu_spec(gpu).peak_bf16_tflops * 1e12


def gpu_hours_from_flops(
    flops: float, *, gpu: str | None = "h100", mfu: float = MFU_DEFAULT.value, peak_flops: float | None = None
) -> float:
    """GPU-hours for ``flops`` of model work on hypothetical hardware: flops / (peak x MFU).

    MFU (model FLOPs utilisation) measured on one H100 (REFERENCE.md section 6): 0.16-0.19
    for fp32 loops, 0.32-0.41 for bf16 + channels_last.

    Args:
        flops: model FLOPs of the job.
        gpu: short name in ``constants.GPUS`` (ignored if ``peak_flops`` is given).
        mfu: achieved share of the peak, in (0, 1].
        peak_flops: peak FLOP/s to use instead of the datasheet.
    """
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    if peak_flops is None:
        if gpu is None:
            raise ValueError("give a GPU name (e.g. h100) or peak_flops")
        peak_flops = peak_flops_per_second(gpu)
    return flops / (peak_flops * mfu) / SECONDS_PER_HOUR


def joules_from_gpu_hours(hours: float, *, watts: float) -> float:
    """Device energy of ``hours`` GPU-hours at a mean board power (e.g. the TDP for an estimate)."""
    return hours * SECONDS_PER_HOUR * watts


class _CostLike(Protocol):
    """What `resolve_constants` reads (read-only, so frozen configs such as `CostConfig` match)."""

    @property
    def pue(self) -> float: ...
    @property
    def grid(self) -> str: ...
    @property
    def co2_g_per_kwh(self) -> float | None: ...
    @property
    def usd_per_kwh(self) -> float: ...
    @property
    def usd_per_gpu_hour(self) -> float | None: ...


@dataclass(frozen=True)
class Constants:
    """The conversion constants one run used, each with its source."""

    pue: Sourced
    co2_g_per_kwh: Sourced
    usd_per_kwh: Sourced
    usd_per_gpu_hour: Sourced | None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {value, unit, source, year}}`` for the run record."""
        out: dict[str, dict[str, Any]] = {}
        for name in ("pue", "co2_g_per_kwh", "usd_per_kwh", "usd_per_gpu_hour"):
            s: Sourced | None = getattr(self, name)
            if s is not None:
                out[name] = {"value": s.value, "unit": s.unit, "source": s.source, "year": s.year}
        return out


def _sourced(value: float, default: Sourced) -> Sourced:
    if value == default.value:
        return default
    return Sourced(value, default.unit, "user override (run config)", None)


def resolve_constants(cost_cfg: _CostLike) -> Constants:
    """The constants a ``CostConfig`` asks for, with sources (overrides are marked as such)."""
    if cost_cfg.co2_g_per_kwh is not None:
        co2 = Sourced(cost_cfg.co2_g_per_kwh, "gCO2/kWh", "user override (cost.co2_g_per_kwh)", None)
    else:
        co2 = grid_intensity(cost_cfg.grid)
    gpu_price = None
    if cost_cfg.usd_per_gpu_hour is not None:
        gpu_price = Sourced(cost_cfg.usd_per_gpu_hour, "USD/GPU-hour", "user setting (cost.usd_per_gpu_hour)", None)
    return Constants(
        pue=_sourced(cost_cfg.pue, PUE_DEFAULT),
        co2_g_per_kwh=co2,
        usd_per_kwh=_sourced(cost_cfg.usd_per_kwh, USD_PER_KWH_DEFAULT),
        usd_per_gpu_hour=gpu_price,
    )
