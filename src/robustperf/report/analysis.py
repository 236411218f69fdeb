"""From run records to what a report shows: a table of runs, fitted laws, forecasts, Pareto fronts, flags.

Everything here is data: `analyze` returns a frozen `Analysis` that the plot and table functions read.
The laws come from `robustperf.scaling` (papers/002 Sec. 3.2 envelope power law; papers/001 Eq. 3 /
Hoffmann et al. 2022 surface on (N, D, adversarial loss)).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustperf.sweep.study import FitSpec, ForecastSpec

log = logging.getLogger(__name__)

# index column -> short name used in the report's frame
COLUMNS: dict[str, str] = {
    "run_id": "run_id",
    "status": "status",
    "failure_reason": "failure_reason",
    "config.model.name": "model",
    "config.method.name": "method",
    "config.data.dataset": "dataset",
    "config.data.n_train": "n_train",
    "config.method.attack.n_steps": "attack_steps",
    "config.method.beta": "beta",
    "config.runtime.seed": "seed",
    "final.n_params": "n_params",
    "final.samples_seen": "samples_seen",
    "final.epoch": "epoch",
    "final.clean_acc": "clean_acc",
    "final.robust_acc": "robust_acc",
    "final.adv_loss": "adv_loss",
    "final.clean_loss": "clean_loss",
    "best.robust_acc": "best_robust_acc",
    "cost.train_flops": "flops",
    "cost.seconds": "seconds",
    "cost.gpu_hours": "gpu_hours",
    "cost.energy_kwh": "energy_kwh",
    "cost.co2_kg": "co2_kg",
    "cost.usd": "usd",
    "cost.energy_source": "energy_source",
}


@dataclass(frozen=True)
class Analysis:
    """Everything the report needs, computed once.

    Attributes:
        frame: one row per run (short column names, see `COLUMNS`), finished and failed.
        robust_source: where ``robust_acc`` came from ("final.robust_acc" or a study evaluation key).
        envelope: metric -> FitResult of the envelope power law vs FLOPs.
        envelope_ids: metric -> run ids of the envelope points.
        surface: FitResult of L(N, D) on adversarial loss, or None (with the reason in `notes`).
        loss_to_accuracy: FitResult of accuracy = slope * loss + intercept on these runs, or None.
        k: measured FLOPs per parameter per training sample (C = k N D) of these runs.
        forecasts: one dict per forecast row (target or budget, law, value and interval).
        flags: (run_id, flag) sanity flags raised anywhere.
        notes: why a fit or forecast was skipped.
    """

    frame: Any
    robust_source: str
    envelope: dict[str, Any] = field(default_factory=dict)
    envelope_ids: dict[str, list[str]] = field(default_factory=dict)
    surface: Any = None
    loss_to_accuracy: Any = None
    k: float | None = None
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    flags: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> Any:
        return self.frame[self.frame["status"] == "finished"]


def runs_frame(rows: list[dict[str, Any]], evaluation_key: str | None = None) -> tuple[Any, str]:
    """A DataFrame with short column names; robust accuracy from the study's evaluation when present."""
    import pandas as pd

    raw = pd.DataFrame(rows)
    frame = pd.DataFrame({short: raw.get(col, np.nan) for col, short in COLUMNS.items()})
    source = "final.robust_acc"
    key = f"evaluations.{evaluation_key}.robust_acc" if evaluation_key else None
    if key and key in raw and raw[key].notna().any():
        frame["robust_acc"] = raw[key].where(raw[key].notna(), frame["robust_acc"])
        source = key
    for col in frame.columns:
        if col not in ("run_id", "status", "failure_reason", "model", "method", "dataset", "energy_source"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["status"] = frame["status"].fillna("pending")
    return frame, source


def collect_flags(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Sanity flags stored anywhere in a record (``*.flags`` columns) plus failed runs."""
    import json

    flags: list[tuple[str, str]] = []
    for row in rows:
        for key, value in row.items():
            if ".flags." in key and key.endswith(".fired"):  # evaluate()'s {name: {fired, ...}} flattened
                if value in (True, 1, "true", "True"):
                    flags.append((row["run_id"], key.removesuffix(".fired")))
            elif key.endswith("flags") and value not in (None, "", "[]", "{}", 0, False):
                items = json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
                names = list(items) if isinstance(items, (list, dict)) else [str(items)]
                flags.extend((row["run_id"], f"{key}: {n}") for n in names)
        if row.get("status") in ("failed", "corrupt"):
            flags.append((row["run_id"], f"{row.get('status')}: {row.get('failure_reason')}"))
    return flags


def left_out_notes(frame: Any) -> list[str]:
    """One note per run the fits leave out, with why (status and reason, or no FLOPs recorded)."""
    notes = []
    for _, row in frame.iterrows():
        status = row.get("status")
        if status != "finished":
            reason = row.get("failure_reason")
            why = f"status {status}" + (f": {reason}" if isinstance(reason, str) and reason else "")
        elif not row.get("flops", 0) > 0:
            why = "no training FLOPs recorded"
        else:
            continue
        notes.append(f"fits leave out run {row.get('run_id')} ({why})")
    return notes


def analyze(rows: list[dict[str, Any]], *, fit: FitSpec | None = None, forecast: ForecastSpec | None = None,
            evaluation_key: str | None = None) -> Analysis:
    """Fit the study's laws and forecasts to index rows (`robustperf.store.load_index`)."""
    fit = fit or FitSpec()
    forecast = forecast or ForecastSpec()
    frame, source = runs_frame(rows, evaluation_key)
    notes: list[str] = []
    done = frame[(frame["status"] == "finished") & (frame["flops"] > 0)]
    notes.extend(left_out_notes(frame))
    envelope, envelope_ids = _envelopes(done, fit, notes) if fit.envelope else ({}, {})
    surface = _surface(done, fit, notes)
    l2a = _loss_to_accuracy(done, notes)
    k = _flops_per_param_sample(done)
    with warnings.catch_warnings():  # percentiles over resamples that never reach a target (inf) warn
        warnings.simplefilter("ignore", RuntimeWarning)
        rows_out = _forecasts(envelope, surface, l2a, k, forecast, notes)
    return Analysis(frame, source, envelope, envelope_ids, surface, l2a, k, rows_out, collect_flags(rows), notes)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a fitter, turning its FitWarning into a note-able status (the FitResult carries it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _envelopes(done: Any, fit: FitSpec, notes: list[str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    from robustperf.scaling import fit_envelope_power_law

    out, ids = {}, {}
    for metric in fit.metrics:
        if metric not in done or done[metric].notna().sum() < 3:
            notes.append(f"envelope law on {metric}: fewer than 3 finished runs with {metric} and FLOPs")
            continue
        sub = done[done[metric].notna()]
        best = "min" if "loss" in metric else "max"
        y = sub[metric].to_numpy(float)
        res = _quiet(fit_envelope_power_law, sub["flops"].to_numpy(float), y, n_bins=fit.n_bins, best=best,
                     bootstrap=fit.bootstrap, seed=fit.seed)
        if not res.ok:
            notes.append(f"envelope law on {metric}: {res.status} ({res.message})")
        out[metric] = res
        ids[metric] = [str(sub["run_id"].iloc[i]) for i in res.metrics.get("envelope_indices", [])]
    return out, ids


def _surface(done: Any, fit: FitSpec, notes: list[str]) -> Any:
    from robustperf.scaling import fit_approach2, fit_chinchilla

    if fit.surface == "none":
        return None
    need = done[["n_params", "samples_seen", "adv_loss"]].dropna()
    n_sizes, n_data = need["n_params"].nunique(), need["samples_seen"].nunique()
    if n_sizes < 3 or n_data < 3:
        notes.append(f"L(N, D) law: needs >= 3 model sizes x 3 data sizes, have {n_sizes} x {n_data}")
        return None
    N, D, L = (need[c].to_numpy(float) for c in ("n_params", "samples_seen", "adv_loss"))
    if fit.surface == "chinchilla":
        res = _quiet(fit_chinchilla, N, D, L, bootstrap=fit.bootstrap, seed=fit.seed)
    else:
        res = _quiet(fit_approach2, N, D, L, 0.0, bootstrap=fit.bootstrap, seed=fit.seed)
    if not res.ok:
        notes.append(f"L(N, D) law ({fit.surface}): {res.status} ({res.message})")
    return res


def _loss_to_accuracy(done: Any, notes: list[str]) -> Any:
    from robustperf.scaling import fit_loss_to_accuracy

    need = done[["adv_loss", "robust_acc"]].dropna()
    if len(need) < 3:
        notes.append("loss -> accuracy map: fewer than 3 runs with both adversarial loss and robust accuracy")
        return None
    try:
        return _quiet(fit_loss_to_accuracy, need["adv_loss"].to_numpy(float), need["robust_acc"].to_numpy(float))
    except ValueError as exc:  # ScalingError: e.g. all losses equal
        notes.append(f"loss -> accuracy map: {exc}")
        return None


def _flops_per_param_sample(done: Any) -> float | None:
    """Median of train_flops / (N * samples seen): the measured k of C = k N D for these runs."""
    need = done[["flops", "n_params", "samples_seen"]].dropna()
    need = need[(need["n_params"] > 0) & (need["samples_seen"] > 0)]
    if need.empty:
        return None
    return float(np.median(need["flops"] / (need["n_params"] * need["samples_seen"])))


def _forecasts(envelope: dict[str, Any], surface: Any, l2a: Any, k: float | None, spec: ForecastSpec,
               notes: list[str]) -> list[dict[str, Any]]:
    from robustperf.scaling import forecast

    rows: list[dict[str, Any]] = []
    acc_fit = envelope.get("robust_acc")
    for target in spec.robust_acc_targets:
        if acc_fit is not None and acc_fit.ok:
            fc = forecast(acc_fit, target_accuracy=target, name="envelope power law (robust acc vs FLOPs)")
            rows.append(_row(f"robust acc {target:.0%}", fc))
        if surface is not None and surface.ok and k and l2a is not None and l2a.ok:
            fc = forecast(surface, target_accuracy=target, k=k, loss_to_accuracy=l2a.to_law(),
                          name=f"{surface.law} L(N, D) + measured loss->acc")
            rows.append(_row(f"robust acc {target:.0%}", fc))
    for budget in spec.flops_budgets:
        if surface is not None and surface.ok and k:
            l2a_law = l2a.to_law() if l2a is not None and l2a.ok else None
            kwargs = {"loss_to_accuracy": l2a_law} if l2a_law is not None else {}
            rows.append(_row(f"budget {budget:.2g} FLOPs", forecast(surface, flops=budget, k=k,
                                                                     name=f"{surface.law} L(N, D)", **kwargs)))
        elif acc_fit is not None and acc_fit.ok:
            rows.append(_row(f"budget {budget:.2g} FLOPs", forecast(acc_fit, flops=budget,
                                                                     name="envelope power law")))
    if (spec.robust_acc_targets or spec.flops_budgets) and not rows:
        notes.append("forecasts: no law was fitted successfully, so nothing was forecast")
    return rows


def _row(what: str, fc: Any) -> dict[str, Any]:
    def est(e: Any) -> tuple[float, float | None, float | None] | None:
        return None if e is None else (e.value, e.low, e.high)

    return {"target": what, "law": fc.law, "reachable": fc.reachable, "message": fc.message,
            "flops": est(fc.flops), "accuracy": est(fc.accuracy), "loss": est(fc.loss), "N": est(fc.N),
            "D": est(fc.D), "gpu_hours": est(fc.cost.get("gpu_hours")), "energy_kwh": est(fc.cost.get("energy_kwh")),
            "co2_kg": est(fc.cost.get("co2_kg")), "usd": est(fc.cost.get("usd_electricity"))}


def finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
