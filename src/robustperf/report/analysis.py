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

from robustperf.store import schema
from robustperf.store.schema import BEST, COST, FINAL
from robustperf.sweep.study import FitSpec, ForecastSpec

log = logging.getLogger(__name__)

# index column -> short name used in the report's frame (both declared in robustperf.store.schema)
COLUMNS: dict[str, str] = {c.key: c.short for c in schema.columns(
    schema.RUN_ID, schema.STATUS, schema.FAILURE_REASON, schema.CONFIG_MODEL, schema.CONFIG_METHOD,
    schema.CONFIG_DATASET, schema.CONFIG_N_TRAIN, schema.CONFIG_ATTACK_STEPS, schema.CONFIG_BETA, schema.CONFIG_SEED,
    FINAL.n_params, FINAL.samples_seen, FINAL.epoch, FINAL.clean_acc, FINAL.robust_acc, FINAL.adv_loss,
    FINAL.clean_loss, BEST.robust_acc, COST.train_flops, COST.seconds, COST.gpu_hours, COST.energy_kwh, COST.co2_kg,
    COST.usd, COST.energy_source)}


HELD_OUT_FRACTION = 0.2  # the runs with the top 20 % of compute are held out of the extrapolation check
LARGE_ERROR = 0.10  # a mean held-out error above 10 % of the observed value marks the law's forecasts


@dataclass(frozen=True)
class ExtrapolationCheck:
    """A law refitted on the runs below the top compute quantile, scored on the held-out largest runs.

    Attributes:
        law: what was checked ("L(N, D) on adversarial loss", "envelope power law on robust accuracy").
        metric: the frame column predicted.
        threshold_flops: smallest held-out compute.
        n_train: runs the refit used.
        rows: one dict per held-out run (run_id, flops, N, D, observed, predicted, error = predicted /
            observed - 1).
        mean_abs_error: mean |error| over the held-out runs.
        status: status of the refit.
        train_flops, train_observed: the runs the refit saw (for the figure).
    """

    law: str
    metric: str
    threshold_flops: float
    n_train: int
    rows: list[dict[str, Any]]
    mean_abs_error: float
    status: str
    train_flops: list[float] = field(default_factory=list)
    train_observed: list[float] = field(default_factory=list)

    @property
    def large(self) -> bool:
        return not self.mean_abs_error <= LARGE_ERROR

    def note(self) -> str:
        """One line for the forecast rows of this law."""
        verdict = "large: treat forecasts as unreliable" if self.large else "within tolerance"
        return (f"held-out error {self.mean_abs_error:.1%} on the {len(self.rows)} largest-compute runs "
                f"({verdict}; tolerance {LARGE_ERROR:.0%})")

    def to_dict(self) -> dict[str, Any]:
        return {"law": self.law, "metric": self.metric, "threshold_flops": self.threshold_flops,
                "n_train": self.n_train, "rows": self.rows, "mean_abs_error": self.mean_abs_error,
                "large": self.large, "status": self.status}


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
        forecasts: one dict per forecast row (target or budget, law, value and interval, validity note,
            caveat of a fit that is not ok, held-out error of the law).
        flags: (run_id, flag) sanity flags raised anywhere.
        notes: why a fit or forecast was skipped.
        extrapolation: law name ("surface", "envelope") -> `ExtrapolationCheck` of that law.
        bootstrap: resamples used for every interval (0: none).
        backtest: the whole pipeline (L(N, D) + loss -> accuracy map + allocation) refitted below the
            top compute quantile and scored in accuracy on the held-out runs (`robustperf.scaling.backtest`),
            or None (with the reason in `notes`).
        saturating: FitResult of the saturating envelope (robust error = power law + floor) vs FLOPs.
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
    extrapolation: dict[str, ExtrapolationCheck] = field(default_factory=dict)
    bootstrap: int = 0
    backtest: Any = None
    saturating: Any = None

    @property
    def finished(self) -> Any:
        return self.frame[self.frame["status"] == "finished"]


def runs_frame(rows: list[dict[str, Any]], evaluation_key: str | None = None) -> tuple[Any, str]:
    """A DataFrame with short column names; robust accuracy from the study's evaluation when present."""
    import pandas as pd

    from robustperf.store.robust import robust_accuracy

    raw = pd.DataFrame(rows)
    frame = pd.DataFrame({short: raw.get(col, np.nan) for col, short in COLUMNS.items()})
    # one robust accuracy per run (issue 27): the study's evaluation when the run has it, else its strongest
    # post-training evaluation, else the training engine's; clean accuracy from the same evaluation
    measured = []
    for row in rows:
        key = evaluation_key if evaluation_key and schema.evaluation_column(evaluation_key, "robust_acc") in row else None
        measured.append(robust_accuracy(row, key))
    frame["robust_acc"] = [m.value for m in measured]
    frame["clean_acc"] = [m.clean if m.clean is not None else c for m, c in zip(measured, frame["clean_acc"],
                                                                                strict=True)]
    frame["robust_label"] = [m.label() for m in measured]
    frame["robust_field"] = [m.column for m in measured]
    for i, (m, row) in enumerate(zip(measured, rows, strict=True)):
        if m.checkpoint == "best" and row.get(BEST.adv_loss) is not None:  # loss and D of that same checkpoint
            frame.loc[frame.index[i], "adv_loss"] = row.get(BEST.adv_loss)
            frame.loc[frame.index[i], "samples_seen"] = row.get(BEST.samples_seen, row.get(FINAL.samples_seen))
    fields = frame["robust_field"][frame["robust_acc"].notna()]
    source = str(fields.mode().iloc[0]) if not fields.empty else FINAL.robust_acc
    text_cols = ("run_id", "status", "failure_reason", "model", "method", "dataset", "energy_source", "robust_label",
                 "robust_field")
    for col in frame.columns:
        if col not in text_cols:
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
    saturating = _saturating(done, fit, notes) if fit.envelope else None
    surface = _surface(done, fit, notes)
    l2a = _loss_to_accuracy(done, fit, notes)
    k = _flops_per_param_sample(done)
    checks = _extrapolation_checks(done, fit, surface, envelope.get("robust_acc"), notes)
    if saturating is not None and saturating.usable:
        sat_check = _envelope_check(done, fit, notes, saturating=True)
        if sat_check is not None:
            checks["saturating"] = sat_check
    backtest = _backtest(done, fit, surface, k, notes)
    with warnings.catch_warnings():  # percentiles over resamples that never reach a target (inf) warn
        warnings.simplefilter("ignore", RuntimeWarning)
        rows_out = _forecasts(envelope, surface, l2a, k, forecast, notes, checks, backtest, saturating)
    from robustperf.store.robust import robust_accuracy

    flags = collect_flags(rows) + [(str(r.get("run_id")), f"weaker attack beaten: {b}")
                                   for r in rows for b in robust_accuracy(r).beaten]
    return Analysis(frame, source, envelope, envelope_ids, surface, l2a, k, rows_out, flags, notes,
                    checks, fit.bootstrap, backtest, saturating)


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
            notes.append(f"envelope law on {metric}: {res.status.value} ({res.message})")
        out[metric] = res
        ids[metric] = [str(sub["run_id"].iloc[i]) for i in res.metrics.envelope_indices or ()]
    return out, ids


def _saturating(done: Any, fit: FitSpec, notes: list[str]) -> Any:
    """The saturating envelope of robust accuracy (issue 27: the pure power law was capped at 100 %)."""
    from robustperf.scaling import ScalingError, fit_saturating_envelope

    sub = done[done["robust_acc"].notna()]
    try:
        res = _quiet(fit_saturating_envelope, sub["flops"].to_numpy(float), sub["robust_acc"].to_numpy(float),
                     n_bins=fit.n_bins, bootstrap=fit.bootstrap, seed=fit.seed)
    except ScalingError as exc:
        notes.append(f"saturating envelope: {exc}")
        return None
    if not res.ok:
        notes.append(f"saturating envelope: {res.status.value} ({res.message})")
    return res


def _surface(done: Any, fit: FitSpec, notes: list[str]) -> Any:
    if fit.surface == "none":
        notes.append("L(N, D) law: not fitted (the study's fit.surface is none)")
        return None
    need = done[["n_params", "samples_seen", "adv_loss"]].dropna()
    n_sizes, n_data = need["n_params"].nunique(), need["samples_seen"].nunique()
    if n_sizes < 3 or n_data < 3:
        notes.append(f"L(N, D) law: needs >= 3 model sizes x 3 data sizes, have {n_sizes} x {n_data}")
        return None
    N, D, L = (need[c].to_numpy(float) for c in ("n_params", "samples_seen", "adv_loss"))
    res = _fit_surface(fit.surface, N, D, L, fit.bootstrap, fit.seed)
    if not res.ok:
        notes.append(f"L(N, D) law ({fit.surface}): {res.status.value} ({res.message})")
    return res


def _fit_surface(law: str, N: np.ndarray, D: np.ndarray, L: np.ndarray, bootstrap: int, seed: int) -> Any:
    """The study's L(N, D) law (``fit.surface``, a registered `SurfaceLaw`) fitted to its runs, all on real data."""
    from robustperf.scaling import surface_law

    surface = surface_law(law)
    fid = 0.0 if surface.uses_fid else None
    return _quiet(surface.fit, N, D, L, fid, bootstrap=bootstrap, seed=seed)


def _loss_to_accuracy(done: Any, fit: FitSpec, notes: list[str]) -> Any:
    """The bounded logit-linear map (issue 27: a straight line forecast 95 % beyond every observed loss)."""
    from robustperf.scaling import fit_logit_loss_to_accuracy as fit_loss_to_accuracy

    need = done[["adv_loss", "robust_acc"]].dropna()
    if len(need) < 3:
        notes.append("loss -> accuracy map: fewer than 3 runs with both adversarial loss and robust accuracy")
        return None
    try:
        res = _quiet(fit_loss_to_accuracy, need["adv_loss"].to_numpy(float), need["robust_acc"].to_numpy(float),
                     bootstrap=fit.bootstrap, seed=fit.seed)
    except ValueError as exc:  # ScalingError: e.g. all losses equal
        notes.append(f"loss -> accuracy map: {exc}")
        return None
    if not res.ok:
        notes.append(f"loss -> accuracy map: {res.status.value} ({res.message})")
    if res.params["slope"] >= 0:
        notes.append(f"loss -> accuracy map: slope {res.params['slope']:.3g} >= 0 (accuracy does not fall as the "
                     "loss rises), so no accuracy is forecast from the L(N, D) law")
    return res


def _flops_per_param_sample(done: Any) -> float | None:
    """Median of train_flops / (N * samples seen): the measured k of C = k N D for these runs."""
    need = done[["flops", "n_params", "samples_seen"]].dropna()
    need = need[(need["n_params"] > 0) & (need["samples_seen"] > 0)]
    if need.empty:
        return None
    return float(np.median(need["flops"] / (need["n_params"] * need["samples_seen"])))


def _usable_map(l2a: Any) -> bool:
    return l2a is not None and l2a.usable and l2a.params["slope"] < 0


def _forecasts(envelope: dict[str, Any], surface: Any, l2a: Any, k: float | None, spec: ForecastSpec,
               notes: list[str], checks: dict[str, ExtrapolationCheck], backtest: Any = None,
               saturating: Any = None) -> list[dict[str, Any]]:
    """Forecast rows from every usable law; a law that is not ok says so in the row (never silently)."""
    from robustperf.scaling import ScalingError, forecast

    rows: list[dict[str, Any]] = []
    acc_fit = envelope.get("robust_acc")
    acc_ok = acc_fit is not None and acc_fit.usable
    surface_ok = surface is not None and surface.usable and bool(k)
    map_kwargs: dict[str, Any] = {}
    if _usable_map(l2a):
        map_kwargs = {"loss_to_accuracy": l2a.to_law(), "loss_range": l2a.metrics.x_range,
                      "map_samples": l2a.bootstrap_laws()}

    def add(what: str, law_key: str, fit: Any, **kwargs: Any) -> None:
        try:
            fc = forecast(fit, **kwargs)
        except (ScalingError, ValueError) as exc:
            notes.append(f"forecast {what} ({kwargs.get('name')}): {exc}")
            return
        rows.append(_row(what, fc, checks.get(law_key), backtest if law_key == "surface" else None))

    sat_ok = saturating is not None and saturating.usable
    y_top = (acc_fit.metrics.y_range or (0.0, 1.0))[1] if acc_ok and acc_fit is not None else 0.0
    for target in spec.robust_acc_targets:
        if sat_ok:
            add(f"robust acc {target:.0%}", "saturating", saturating, target_accuracy=target,
                name="saturating envelope (robust error = power law + floor)")
        if acc_ok and target <= y_top:  # the pure power law only inside the accuracies it was fitted on
            add(f"robust acc {target:.0%}", "envelope", acc_fit, target_accuracy=target,
                name="envelope power law (robust acc vs FLOPs)")
        elif acc_ok:
            notes.append(f"forecast robust acc {target:.0%}: the pure envelope power law is not used beyond the "
                         f"accuracies it was fitted on (up to {y_top:.1%}); it has no ceiling")
        if surface_ok and map_kwargs:
            add(f"robust acc {target:.0%}", "surface", surface, target_accuracy=target, k=k,
                name=f"{surface.law} L(N, D) + fitted logit loss->acc map", **map_kwargs)
    for budget in spec.flops_budgets:
        if surface_ok:
            add(f"budget {budget:.2g} FLOPs", "surface", surface, flops=budget, k=k, name=f"{surface.law} L(N, D)",
                **map_kwargs)
        if sat_ok:
            add(f"budget {budget:.2g} FLOPs", "saturating", saturating, flops=budget,
                name="saturating envelope (robust error = power law + floor)")
    if (spec.robust_acc_targets or spec.flops_budgets) and not rows:
        notes.append("forecasts: no law was fitted successfully, so nothing was forecast")
    return rows


def _row(what: str, fc: Any, check: ExtrapolationCheck | None = None, backtest: Any = None) -> dict[str, Any]:
    from robustperf.scaling.backtest import widen

    def est(e: Any) -> tuple[float, float | None, float | None] | None:
        return None if e is None else (e.value, e.low, e.high)

    held_out = check.note() if check is not None else "no extrapolation check (too few runs)"
    accuracy = est(fc.accuracy)
    if accuracy is not None and backtest is not None and math.isfinite(backtest.conformal_logit):
        accuracy = widen(accuracy, backtest.conformal_logit)  # held-out runs like the backtest's fall inside
    return {"target": what, "law": fc.law, "reachable": fc.reachable, "message": fc.message,
            "extrapolation": "extrapolation" in fc.validity, "backtest_passed": None if backtest is None else
            backtest.passed, "widened_by": None if backtest is None else backtest.conformal_logit,
            "flops": est(fc.flops), "accuracy": accuracy, "loss": est(fc.loss), "N": est(fc.N),
            "D": est(fc.D), "gpu_hours": est(fc.cost.get("gpu_hours")), "energy_kwh": est(fc.cost.get("energy_kwh")),
            "co2_kg": est(fc.cost.get("co2_kg")), "usd": est(fc.cost.get("usd_electricity")),
            "validity": fc.validity, "caveat": fc.caveat, "held_out": held_out,
            "held_out_large": bool(check is not None and check.large)}


def _backtest(done: Any, fit: FitSpec, surface: Any, k: float | None, notes: list[str]) -> Any:
    """The whole pipeline backtested in accuracy (issue 27); None with a note when it cannot run."""
    from robustperf.scaling import ScalingError
    from robustperf.scaling.backtest import backtest_pipeline

    if surface is None or not k:
        return None
    need = done[["run_id", "flops", "n_params", "samples_seen", "adv_loss", "robust_acc"]].dropna()
    try:
        return backtest_pipeline(need["run_id"], need["flops"], need["n_params"], need["samples_seen"],
                                 need["adv_loss"], need["robust_acc"], k=k,
                                 fit_surface=lambda N, D, L: _fit_surface(fit.surface, N, D, L, 0, fit.seed))
    except ScalingError as exc:
        notes.append(f"backtest of the forecasting pipeline: {exc}")
        return None


def _held_out_split(flops: np.ndarray) -> np.ndarray:
    """Mask of the runs in the top ``HELD_OUT_FRACTION`` of compute (at least one)."""
    n_held = max(1, int(round(HELD_OUT_FRACTION * len(flops))))
    threshold = np.sort(flops)[-n_held]
    return flops >= threshold


def _extrapolation_checks(done: Any, fit: FitSpec, surface: Any, acc_fit: Any, notes: list[str]
                          ) -> dict[str, ExtrapolationCheck]:
    """Refit each law below the top compute quantile and score it on the held-out largest runs.

    The Alabdulmohsin et al. (2022) protocol (REFERENCE.md s.4): a law that fits in-sample can still
    extrapolate badly, and extrapolating is what a forecast does.
    """
    checks: dict[str, ExtrapolationCheck] = {}
    if surface is not None:
        check = _surface_check(done, fit, notes)
        if check is not None:
            checks["surface"] = check
    if acc_fit is not None:
        check = _envelope_check(done, fit, notes)
        if check is not None:
            checks["envelope"] = check
    return checks


def _surface_check(done: Any, fit: FitSpec, notes: list[str]) -> ExtrapolationCheck | None:
    need = done[["run_id", "flops", "n_params", "samples_seen", "adv_loss"]].dropna()
    held = _held_out_split(need["flops"].to_numpy(float))
    train = need[~held]
    if train["n_params"].nunique() < 3 or train["samples_seen"].nunique() < 3:
        notes.append(f"extrapolation check of L(N, D): holding out the {int(held.sum())} largest runs leaves "
                     f"{train['n_params'].nunique()} model sizes x {train['samples_seen'].nunique()} data sizes "
                     "(needs 3 x 3); add runs")
        return None
    N, D, L = (train[c].to_numpy(float) for c in ("n_params", "samples_seen", "adv_loss"))
    refit = _fit_surface(fit.surface, N, D, L, 0, fit.seed)  # point fit only: the check is about the mean
    if not refit.usable:
        notes.append(f"extrapolation check of L(N, D): the refit below the top compute quantile is "
                     f"{refit.status.value}")
        return None
    law = refit.to_law()
    test = need[held]
    pred = law(test["n_params"].to_numpy(float), test["samples_seen"].to_numpy(float))
    return _check("L(N, D) on adversarial loss", "adv_loss", test, pred, train, refit.status.value,
                  extra=("n_params", "samples_seen"))


def _envelope_check(done: Any, fit: FitSpec, notes: list[str], *, saturating: bool = False
                    ) -> ExtrapolationCheck | None:
    from robustperf.scaling import fit_envelope_power_law, fit_saturating_envelope

    need = done[["run_id", "flops", "robust_acc", "n_params", "samples_seen"]].dropna(subset=["flops", "robust_acc"])
    need = need[need["robust_acc"] > 0]
    held = _held_out_split(need["flops"].to_numpy(float))
    train = need[~held]
    if len(train) < 3:
        notes.append("extrapolation check of the envelope law: fewer than 3 runs below the top compute quantile")
        return None
    if saturating:
        refit = _quiet(fit_saturating_envelope, train["flops"].to_numpy(float), train["robust_acc"].to_numpy(float),
                       n_bins=fit.n_bins)
    else:
        refit = _quiet(fit_envelope_power_law, train["flops"].to_numpy(float), train["robust_acc"].to_numpy(float),
                       n_bins=fit.n_bins, best="max")
    if not refit.usable:
        notes.append(f"extrapolation check of the envelope law: the refit is {refit.status.value}")
        return None
    # The law describes the best run at a compute, so it is scored on the best held-out run.
    test = need[held]
    test = test[test["robust_acc"] == test["robust_acc"].max()].head(1)
    from robustperf.scaling import bounded_accuracy

    pred = bounded_accuracy(refit.to_law()(test["flops"].to_numpy(float)))
    what = "saturating envelope" if saturating else "envelope power law"
    return _check(f"{what} on robust accuracy (best held-out run)", "robust_acc", test,
                  np.atleast_1d(pred), train, refit.status.value, extra=("n_params", "samples_seen"))


def _check(law: str, metric: str, test: Any, pred: np.ndarray, train: Any, status: str,
           extra: tuple[str, ...]) -> ExtrapolationCheck:
    observed = test[metric].to_numpy(float)
    errors = pred / observed - 1.0
    rows = []
    for (_, r), p, e in zip(test.iterrows(), pred, errors, strict=True):
        row = {"run_id": str(r["run_id"]), "flops": float(r["flops"]), "observed": float(r[metric]),
               "predicted": float(p), "error": float(e)}
        row.update({c: (float(r[c]) if r[c] == r[c] else None) for c in extra if c in r})
        rows.append(row)
    return ExtrapolationCheck(law, metric, float(test["flops"].min()), len(train), rows,
                              float(np.mean(np.abs(errors))), status, train["flops"].astype(float).tolist(),
                              train[metric].astype(float).tolist())


def finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
