"""Forecasts: accuracy at a budget, the budget for a target, and what that budget costs.

A law (published, or a `FitResult` fitted here) gives the compute-optimal loss at a FLOPs budget; the
loss-to-accuracy map (papers/001 App. F.2.2) turns it into AutoAttack accuracy. The inverse question -
FLOPs to reach a target - is solved numerically and says "unreachable" when the target is beyond the
law's ceiling (its loss as N, D -> infinity). FLOPs become GPU-hours at a stated utilisation on a named
GPU, then kWh, CO2 and USD with the cost module's sourced constants. When the law was fitted here with a
bootstrap, every quantity gets a percentile interval from the resampled laws.

Accuracies are fractions and stay in [0, 1] on every path (issue 11): the loss-to-accuracy line is
clipped to [0, 1], so the saturating composition "loss law -> accuracy" has the ceiling
min(1, map(E')); a power law in accuracy has no ceiling of its own, so it is capped at 1 and every
forecast from it says up to which accuracy it was fitted (beyond that it is an extrapolation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq

from robustperf.cost import conversions
from robustperf.cost.constants import (
    GRID_DEFAULT,
    MFU_DEFAULT,
    PUE_DEFAULT,
    USD_PER_KWH_DEFAULT,
    gpu_spec,
    grid_intensity,
)
from robustperf.scaling.accuracy_map import AccuracyMap
from robustperf.scaling.allocation import DEFAULT_FLOPS_PER_PARAM_SAMPLE, Allocation, compute_optimal
from robustperf.scaling.laws import PowerLaw, SurfaceLaw
from robustperf.scaling.published import BARTOLDSON2024_LOSS_TO_ACCURACY
from robustperf.scaling.result import Estimate, FitResult, ScalingError
from robustperf.scaling.saturating import SaturatingPowerLaw
from robustperf.scaling.tables import _FLOP_UNITS, x_unit_of

HOURS_PER_YEAR = 24.0 * 365.25
__all__ = ["CostForecast", "FlopsForecast", "Forecast", "accuracy_validity", "bounded_accuracy", "ceiling_loss",
           "check_forecast_inputs", "estimate_derived", "forecast", "forecast_accuracy", "forecast_cost",
           "forecast_flops", "forecast_loss", "loss_to_accuracy_ceiling", "x_unit_of"]

def _x_scale(law: PowerLaw) -> float:
    """FLOPs per unit of the power law's x (Debenedetti's x is in TFLOP); "" (unstated) reads as FLOPs."""
    unit = law.x_unit.upper()
    return next((scale for name, scale in _FLOP_UNITS.items() if unit.startswith(name)), 1.0)


def check_forecast_inputs(fit: FitResult | None, law: Any, flops: float | None, target_accuracy: float | None) -> None:
    """Refuse, before any work, what would give a meaningless forecast (issue 27).

    A budget that is not a positive finite number of FLOPs; a target outside (0, 1); a power law fitted
    on accuracies in percent (it would forecast 100 % at every budget); a power law whose x column has
    no FLOP unit (``--flops`` would silently be read in that column's unit).
    """
    if flops is not None and not (isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0):
        raise ScalingError(f"the budget must be a positive, finite number of FLOPs (e.g. 1e21), got {flops}")
    if target_accuracy is not None and not (math.isfinite(target_accuracy) and 0.0 < target_accuracy < 1.0):
        hint = " (a percentage? divide it by 100)" if 1.0 < target_accuracy <= 100.0 else ""
        raise ScalingError(f"the target accuracy must be a fraction in (0, 1), got {target_accuracy}{hint}")
    if fit is None or not isinstance(law, PowerLaw):
        return
    y_range = fit.metrics.y_range
    if y_range and y_range[1] > 1.0 and "%" not in law.y_unit:
        raise ScalingError(f"the power law was fitted on y values up to {y_range[1]:.4g}: accuracies in percent? "
                           "Refit on fractions (divide the column by 100) before forecasting")
    column = fit.metrics.x_column
    if column and not law.x_unit:
        raise ScalingError(f"the power law was fitted on x column {column!r}, which names no FLOP unit, so a budget "
                           "in FLOPs cannot be converted; refit with --x on a FLOPs column (e.g. cost.train_flops) "
                           "or a column named in TFLOP/PFLOP")


def _y_scale(law: PowerLaw) -> float:
    """Accuracy fraction per unit of the power law's y (Debenedetti's y is in %)."""
    return 0.01 if "%" in law.y_unit else 1.0


def ceiling_loss(law: Any, *, fid: float = 0.0) -> float:
    """The loss as N, D -> infinity: the law's ``ceiling`` (E' for Chinchilla/Approach 2, E' + (Q FID)^kappa for
    Approach 3)."""
    if isinstance(law, SurfaceLaw):
        return law.ceiling(fid)
    raise ScalingError(f"no loss ceiling for a {type(law).__name__}")


def bounded_accuracy(value: Any) -> Any:
    """An accuracy clipped to [0, 1] (nan stays nan); scalars come back as float."""
    out = np.clip(np.asarray(value, dtype=float), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def loss_to_accuracy_ceiling(law: Any, loss_to_accuracy: AccuracyMap, *, fid: float = 0.0) -> float:
    """The best accuracy an N, D law can reach: the loss map at its loss floor, clipped to [0, 1]."""
    _check_map(loss_to_accuracy)
    return bounded_accuracy(loss_to_accuracy(ceiling_loss(law, fid=fid)))


def _check_map(loss_to_accuracy: AccuracyMap) -> None:
    if not loss_to_accuracy.slope < 0:
        raise ScalingError(f"the loss -> accuracy map has slope {loss_to_accuracy.slope:.3g} >= 0 (accuracy would not "
                           "fall as the loss rises); refit it on runs that span a range of losses")


def accuracy_validity(law: PowerLaw, y_max: float | None = None) -> tuple[float, float]:
    """(accuracy up to which a power law in accuracy is valid, FLOPs where it reaches 1).

    ``y_max`` is the highest accuracy (in the law's units) it was fitted on; without one, the law is
    valid at most up to accuracy 1. FLOPs are inf when the law never reaches 1 (alpha <= 0).
    """
    scale = _y_scale(law)
    valid = 1.0 if y_max is None else min(1.0, float(y_max) * scale)
    if law.alpha <= 0 or law.C <= 0:
        return valid, math.inf
    return valid, float(law.inverse(1.0 / scale)) * _x_scale(law)


def forecast_loss(law: Any, flops: float, *, fid: float = 0.0, k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE) -> float:
    """Compute-optimal loss at ``flops``."""
    return compute_optimal(law, flops, fid=fid, k=k).loss


def forecast_accuracy(law: Any, flops: float, *, fid: float = 0.0, k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE,
                      loss_to_accuracy: AccuracyMap = BARTOLDSON2024_LOSS_TO_ACCURACY) -> float:
    """Robust accuracy (fraction) at a FLOPs budget.

    N, D laws: compute-optimal loss mapped to accuracy (papers/001 App. F.2.2). Power laws of accuracy
    against FLOPs (papers/002) are evaluated directly, in their own x and y units converted to FLOPs and
    fractions. Either way the result is clipped to [0, 1] (`bounded_accuracy`).
    """
    if isinstance(law, PowerLaw):
        return bounded_accuracy(float(law(flops / _x_scale(law))) * _y_scale(law))
    if isinstance(law, SaturatingPowerLaw):
        return bounded_accuracy(law(flops))
    _check_map(loss_to_accuracy)
    return bounded_accuracy(loss_to_accuracy(forecast_loss(law, flops, fid=fid, k=k)))


@dataclass(frozen=True)
class FlopsForecast:
    """FLOPs to reach a target, or why it cannot be reached."""

    flops: float  # inf when unreachable
    reachable: bool
    target_loss: float | None
    ceiling_loss: float | None
    ceiling_accuracy: float | None
    message: str


def forecast_flops(law: Any, *, target_accuracy: float | None = None, target_loss: float | None = None,
                   fid: float = 0.0, k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE,
                   loss_to_accuracy: AccuracyMap = BARTOLDSON2024_LOSS_TO_ACCURACY) -> FlopsForecast:
    """Training FLOPs of the compute-optimal run that reaches a target accuracy (fraction) or loss.

    Returns:
        `FlopsForecast`; ``reachable`` is False (and ``flops`` inf) when the target is at or beyond the
        ceiling, with a message "unreachable: ceiling is X".
    """
    if (target_accuracy is None) == (target_loss is None):
        raise ScalingError("give exactly one of target_accuracy or target_loss")
    if isinstance(law, PowerLaw):
        if target_accuracy is None:
            raise ScalingError("a power law of accuracy vs FLOPs takes target_accuracy, not target_loss")
        if not 0.0 < target_accuracy < 1.0:
            raise ScalingError(f"target accuracy must be a fraction in (0, 1), got {target_accuracy}")
        if law.alpha <= 0:
            return FlopsForecast(math.inf, False, None, None, None,
                                 f"unreachable: the power law does not rise with FLOPs (alpha {law.alpha:.3g})")
        flops = float(law.inverse(target_accuracy / _y_scale(law))) * _x_scale(law)
        return FlopsForecast(flops, True, None, None, 1.0, "power law in accuracy (no ceiling of its own)")
    if isinstance(law, SaturatingPowerLaw):
        if target_accuracy is None:
            raise ScalingError("a saturating envelope of accuracy vs FLOPs takes target_accuracy, not target_loss")
        if target_accuracy >= law.ceiling:
            return FlopsForecast(math.inf, False, None, None, law.ceiling,
                                 f"unreachable: the envelope saturates at accuracy {law.ceiling:.4f}")
        return FlopsForecast(law.inverse(target_accuracy), True, None, None, law.ceiling, "ok")
    if not isinstance(law, SurfaceLaw):
        raise ScalingError(f"cannot forecast FLOPs with a {type(law).__name__}")
    _check_map(loss_to_accuracy)
    floor = ceiling_loss(law, fid=fid)
    ceiling_acc = bounded_accuracy(loss_to_accuracy(floor))
    if target_accuracy is not None:
        if not 0.0 < target_accuracy < 1.0:
            raise ScalingError(f"target accuracy must be a fraction in (0, 1), got {target_accuracy}")
        if target_accuracy >= ceiling_acc and ceiling_acc < 1.0:
            return FlopsForecast(math.inf, False, float(loss_to_accuracy.inverse(target_accuracy)), floor, ceiling_acc,
                                 f"unreachable: ceiling is accuracy {ceiling_acc:.5f} (loss {floor:.5f}) at FID {fid:g}")
        target_loss = float(loss_to_accuracy.inverse(target_accuracy))
    assert target_loss is not None  # exactly one target was given
    if target_loss <= floor * (1.0 + 1e-12):
        return FlopsForecast(math.inf, False, target_loss, floor, ceiling_acc,
                             f"unreachable: ceiling is accuracy {ceiling_acc:.5f} (loss {floor:.5f}) at FID {fid:g}")

    def gap(log_c: float) -> float:
        return compute_optimal(law, math.exp(log_c), fid=fid, k=k).loss - target_loss

    lo, hi = math.log(k) + 1.0, math.log(k) + 1.0
    if gap(lo) <= 0:
        return FlopsForecast(math.exp(lo), True, target_loss, floor, ceiling_acc, "target met by a trivial budget")
    while gap(hi) > 0:
        hi += 10.0
        if hi > 700:
            return FlopsForecast(math.inf, False, target_loss, floor, ceiling_acc,
                                 f"unreachable below 1e300 FLOPs: ceiling is accuracy {ceiling_acc:.5f}")
    log_c = brentq(gap, lo, hi, xtol=1e-12, rtol=1e-14)
    return FlopsForecast(math.exp(log_c), True, target_loss, floor, ceiling_acc, "ok")


@dataclass(frozen=True)
class CostForecast:
    """What a FLOPs budget costs on a GPU at a utilisation (all conversion constants with sources)."""

    flops: float
    gpu_hours: float
    gpu_years: float
    energy_kwh: float
    co2_kg: float
    usd_electricity: float
    usd_cloud: float | None
    constants: dict[str, dict[str, Any]] = field(default_factory=dict)


def forecast_cost(flops: float, *, gpu: str = "h100", mfu: float = MFU_DEFAULT.value, watts: float | None = None,
                  pue: float = PUE_DEFAULT.value, grid: str = GRID_DEFAULT, co2_g_per_kwh: float | None = None,
                  usd_per_kwh: float = USD_PER_KWH_DEFAULT.value, usd_per_gpu_hour: float | None = None) -> CostForecast:
    """GPU-hours, kWh (x PUE), CO2 and USD of ``flops`` of training on one kind of GPU.

    GPU time = flops / (datasheet peak x MFU); energy = GPU time x board power (default: the TDP, close
    to the 657-674 W measured for TRADES-10 on an H100, REFERENCE.md s.6).
    """
    spec = gpu_spec(gpu)
    power = spec.tdp_watts if watts is None else watts
    if not math.isfinite(flops):
        inf = math.inf
        return CostForecast(flops, inf, inf, inf, inf, inf, inf if usd_per_gpu_hour else None)
    hours = conversions.gpu_hours_from_flops(flops, gpu=gpu, mfu=mfu)
    kwh = conversions.joules_to_kwh(conversions.joules_from_gpu_hours(hours, watts=power), pue=pue)
    co2 = conversions.kwh_to_co2_kg(kwh, g_per_kwh=co2_g_per_kwh, grid=grid)
    intensity = co2_g_per_kwh if co2_g_per_kwh is not None else grid_intensity(grid).value
    constants: dict[str, dict[str, Any]] = {
        "gpu": {"value": spec.name, "source": spec.source},
        "peak_flops": {"value": spec.peak_bf16_tflops * 1e12, "source": spec.source},
        "mfu": {"value": mfu, "source": MFU_DEFAULT.source if mfu == MFU_DEFAULT.value else "user setting"},
        "watts": {"value": power, "source": spec.source if watts is None else "user setting"},
        "pue": {"value": pue, "source": PUE_DEFAULT.source if pue == PUE_DEFAULT.value else "user setting"},
        "co2_g_per_kwh": {"value": intensity,
                          "source": grid_intensity(grid).source if co2_g_per_kwh is None else "user setting"},
        "usd_per_kwh": {"value": usd_per_kwh,
                        "source": USD_PER_KWH_DEFAULT.source if usd_per_kwh == USD_PER_KWH_DEFAULT.value
                        else "user setting"},
    }
    cloud = None
    if usd_per_gpu_hour is not None:
        cloud = conversions.gpu_hours_usd(hours, usd_per_gpu_hour=usd_per_gpu_hour)
        constants["usd_per_gpu_hour"] = {"value": usd_per_gpu_hour, "source": "user setting"}
    return CostForecast(flops, hours, hours / HOURS_PER_YEAR, kwh, co2,
                        conversions.electricity_usd(kwh, usd_per_kwh=usd_per_kwh), cloud, constants)


def estimate_derived(fit: FitResult, fn: Any, *, level: float = 0.95) -> Estimate:
    """Any quantity derived from a fitted law, with a bootstrap interval when the fit has one.

    Example:
        >>> estimate_derived(fit, lambda law: compute_optimal(law, 1e21, fid=1.65).N)  # doctest: +SKIP

    Resamples whose law cannot produce the quantity (e.g. alpha <= 0) are left out of the interval.
    """
    value = float(fn(fit.to_law()))
    vals = []
    for law in fit.bootstrap_laws():
        try:
            vals.append(float(fn(law)))
        except (ScalingError, ValueError, ZeroDivisionError, OverflowError):
            continue
    arr = np.array(vals, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return Estimate(value)
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(arr, [tail, 100.0 - tail])
    return Estimate(value, float(lo), float(hi), level)


@dataclass(frozen=True)
class Forecast:
    """A forecast with intervals (``Estimate.low/high`` set when the law came with a bootstrap)."""

    law: str
    fid: float
    k: float
    flops: Estimate
    reachable: bool
    message: str
    loss: Estimate | None
    accuracy: Estimate | None
    N: Estimate | None
    D: Estimate | None
    cost: dict[str, Estimate]
    constants: dict[str, dict[str, Any]]
    validity: str = ""
    caveat: str = ""

    def to_dict(self) -> dict[str, Any]:
        def est(e: Estimate | None) -> dict[str, Any] | None:
            return None if e is None else e.to_dict()

        return {"law": self.law, "fid": self.fid, "k": self.k, "flops": est(self.flops), "reachable": self.reachable,
                "message": self.message, "loss": est(self.loss), "accuracy": est(self.accuracy), "N": est(self.N),
                "D": est(self.D), "cost": {k: est(v) for k, v in self.cost.items()}, "constants": self.constants,
                "validity": self.validity, "caveat": self.caveat}


def _one(law: Any, flops: float | None, target_accuracy: float | None, fid: float, k: float,
         loss_to_accuracy: AccuracyMap, cost_kwargs: dict[str, Any]) -> tuple[dict[str, float], bool, str, CostForecast]:
    """Every forecast quantity for one law (the point estimate or one bootstrap resample)."""
    values: dict[str, float] = {}
    reachable, message = True, "ok"
    if flops is None:
        ff = forecast_flops(law, target_accuracy=target_accuracy, fid=fid, k=k, loss_to_accuracy=loss_to_accuracy)
        flops, reachable, message = ff.flops, ff.reachable, ff.message
    values["flops"] = flops
    if isinstance(law, SurfaceLaw) and math.isfinite(flops):
        alloc: Allocation = compute_optimal(law, flops, fid=fid, k=k)
        values.update(loss=alloc.loss, N=alloc.N, D=alloc.D, accuracy=bounded_accuracy(loss_to_accuracy(alloc.loss)))
    elif isinstance(law, (PowerLaw, SaturatingPowerLaw)) and math.isfinite(flops):
        values["accuracy"] = forecast_accuracy(law, flops)
    cost = forecast_cost(flops, **cost_kwargs)
    for name in ("gpu_hours", "gpu_years", "energy_kwh", "co2_kg", "usd_electricity", "usd_cloud"):
        v = getattr(cost, name)
        if v is not None:
            values[name] = v
    return values, reachable, message, cost


def forecast(law_or_fit: Any, *, flops: float | None = None, target_accuracy: float | None = None, fid: float = 0.0,
             k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE, gpu: str = "h100", mfu: float = MFU_DEFAULT.value, level: float = 0.95,
             loss_to_accuracy: AccuracyMap = BARTOLDSON2024_LOSS_TO_ACCURACY, name: str | None = None,
             loss_range: tuple[float, float] | None = None, map_samples: Sequence[AccuracyMap] = (),
             **cost_kwargs: Any) -> Forecast:
    """Forecast from a budget (``flops``) or for a target accuracy, with costs and bootstrap intervals.

    Args:
        law_or_fit: a law object, or a `FitResult` (its bootstrap laws give the intervals).
        flops: training budget in FLOPs (give this or ``target_accuracy``).
        target_accuracy: robust accuracy to reach, as a fraction.
        fid: FID of the training data (0: unlimited real-quality data).
        k: FLOPs per parameter per sample (C = k N D; default 7822 for TRADES-10 WRNs).
        gpu, mfu: hardware for the time and energy conversion.
        level: interval coverage.
        loss_to_accuracy: loss -> accuracy map (default: papers/001 App. F.2.2).
        name: label of the law in the result (default: the fit's law name or the law's source).
        loss_range: (lowest, highest) loss the loss -> accuracy map was fitted on; a forecast loss
            outside it is labelled an extrapolation of the map.
        map_samples: bootstrap resamples of the loss -> accuracy map; resample i of the law is paired
            with map resample i (cycled), so the map's own uncertainty widens every accuracy interval.
        **cost_kwargs: forwarded to `forecast_cost` (watts, pue, grid, co2_g_per_kwh, usd_per_kwh, usd_per_gpu_hour).
    """
    if (flops is None) == (target_accuracy is None):
        raise ScalingError("give exactly one of flops or target_accuracy")
    fit = law_or_fit if isinstance(law_or_fit, FitResult) else None
    if fit is not None:
        if not fit.usable:
            raise ScalingError(f"cannot forecast from a fit with status {fit.status.value!r}: {fit.message}")
        law, boot_laws, name_default = fit.to_law(), fit.bootstrap_laws(), fit.law
    else:
        law, boot_laws = law_or_fit, []
        name_default = getattr(law_or_fit, "source", "") or type(law_or_fit).__name__
    check_forecast_inputs(fit, law, flops, target_accuracy)
    name = name or name_default
    ckw = {"gpu": gpu, "mfu": mfu, **cost_kwargs}
    point, reachable, message, cost = _one(law, flops, target_accuracy, fid, k, loss_to_accuracy, ckw)
    samples = []
    for i, b in enumerate(boot_laws):
        m = map_samples[i % len(map_samples)] if map_samples else loss_to_accuracy
        try:
            samples.append(_one(b, flops, target_accuracy, fid, k, m, ckw)[0])
        except (ScalingError, ValueError, ZeroDivisionError, OverflowError):
            continue  # a degenerate resample (e.g. alpha <= 0) has no allocation; leave it out of the interval

    def est(key: str) -> Estimate | None:
        if key not in point:
            return None
        vals = np.array([s.get(key, math.nan) for s in samples], dtype=float)
        vals = vals[~np.isnan(vals)]  # inf (unreachable) stays and widens the interval
        if vals.size == 0:
            return Estimate(point[key])
        tail = 50.0 * (1.0 - level)
        lo, hi = np.percentile(vals, [tail, 100.0 - tail])
        return Estimate(point[key], float(lo), float(hi), level)

    cost_keys = ("gpu_hours", "gpu_years", "energy_kwh", "co2_kg", "usd_electricity", "usd_cloud")
    costs = {key: e for key in cost_keys if (e := est(key)) is not None}
    validity = _validity_note(law, fit, point, target_accuracy, fid, loss_to_accuracy, loss_range)
    return Forecast(law=name, fid=fid, k=k, flops=est("flops") or Estimate(math.inf), reachable=reachable,
                    message=message, loss=est("loss"), accuracy=est("accuracy"), N=est("N"), D=est("D"),
                    cost=costs, constants=cost.constants, validity=validity,
                    caveat=fit.caveat() if fit is not None else "")


def _validity_note(law: Any, fit: FitResult | None, point: dict[str, float], target_accuracy: float | None,
                   fid: float, loss_to_accuracy: AccuracyMap, loss_range: tuple[float, float] | None) -> str:
    """Up to where this forecast's accuracy can be trusted, in one line."""
    if isinstance(law, PowerLaw):
        y_range = fit.metrics.y_range if fit is not None else None
        valid, flops_at_one = accuracy_validity(law, y_range[1] if y_range else None)
        where = (f"fitted on accuracies up to {valid:.3g}" if y_range else "no ceiling of its own")
        note = f"power law in accuracy, {where}; capped at 1"
        if math.isfinite(flops_at_one):
            note += f" (it reaches 1 at {flops_at_one:.2g} FLOPs)"
        acc = target_accuracy if target_accuracy is not None else point.get("accuracy")
        if acc is not None and y_range and acc > valid:
            note += f"; accuracy {acc:.3g} lies beyond the fitted range: extrapolation"
        return note
    if isinstance(law, SaturatingPowerLaw):
        note = f"saturating envelope (error = power law + floor), ceiling {law.ceiling:.3g}"
        x_range = fit.metrics.x_range if fit is not None else None
        flops = point.get("flops")
        if x_range and flops is not None and math.isfinite(flops) and flops > x_range[1]:
            note += f"; {flops:.3g} FLOPs is beyond the largest run ({x_range[1]:.3g}): extrapolation"
        return note
    if isinstance(law, SurfaceLaw):
        ceiling = loss_to_accuracy_ceiling(law, loss_to_accuracy, fid=fid)
        note = (f"saturating: loss law composed with the loss -> accuracy map, ceiling {ceiling:.3g} "
                f"(loss floor {ceiling_loss(law, fid=fid):.3g})")
        loss = point.get("loss")
        if loss_range is not None and loss is not None and math.isfinite(loss) and not (
                loss_range[0] <= loss <= loss_range[1]):
            note += (f"; loss {loss:.3g} is outside the losses [{loss_range[0]:.3g}, {loss_range[1]:.3g}] the map "
                     "was fitted on: extrapolation")
        return note
    return ""

