"""Trends of a model zoo over time (papers/004 Sec. XIV.A and C): how fast do robust models grow, and where
is robust accuracy heading?

From a RobustBench-style table (one row per published model with a year, parameters, forward FLOPs
and accuracies; `load_zoo`):

- `fit_log_trend`: log10(value) = intercept + slope * (year - year0) by least squares, with R^2 and a
  bootstrap interval of the slope; the doubling time is log10(2) / slope years.
- `detect_eras` / `fit_eras`: the same fit per era. Detection tries every split between two distinct
  years (each side with enough models) and keeps the one with the least squared error when it lowers
  the BIC against a single line (two free lines plus the breakpoint, 5 parameters, against 2).
- `fit_accuracy_trend`: robust accuracy against year on the logit scale (so forecasts stay inside
  [0, ceiling]), fitted by default on the best model of each year; forecasts carry bootstrap intervals
  ("what robust accuracy in 2027?").
- `fit_efficiency_frontier`: Thompson et al. (2020)'s quantile regression, log10(1/error) = alpha +
  beta * log10(compute) + gamma * (year - year0) at the 0.9 quantile: the frontier of the 10 % most
  efficient models, with the time trend standing in for algorithmic progress.
- `add_training_flops`: training FLOPs from forward FLOPs and a recipe (epochs, samples per epoch,
  method, attack steps), C = k_method * F * samples (REFERENCE.md s.3).

Pure numpy/scipy/scikit-learn/pandas: no torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.fit_metrics import FitMetrics
from robustperf.scaling.result import STATUS_OK, BootstrapResult, Estimate, FitResult, ScalingError

log = logging.getLogger(__name__)

LOG10_2 = math.log10(2.0)

# Columns of the normalised zoo frame (`load_zoo`).
ZOO_COLUMNS = ("model_id", "dataset", "year", "n_params", "fwd_flops", "train_flops", "robust_acc", "clean_acc")
# Candidate source columns for each zoo column, first match wins (RobustBench's names first).
ZOO_ALIASES: dict[str, tuple[str, ...]] = {
    "model_id": ("model_id", "model", "name", "run_id"),
    "dataset": ("dataset",),
    "year": ("year", "year_in_id", "year_venue"),
    "n_params": ("n_params", "n_params_used_in_forward", "n_params_total", "parameters", "params"),
    "fwd_flops": ("fwd_flops", "fwd_flops_per_image", "forward_flops", "flops_per_image"),
    "train_flops": ("train_flops", "training_flops"),
    "robust_acc": ("robust_acc", "autoattack_acc", "aa_robust_acc", "accuracy"),
    "clean_acc": ("clean_acc",),
}
TREND_METRICS = ("n_params", "fwd_flops", "train_flops")


# ----------------------------------------------------------------------------------------------------------------
# loading


def load_zoo(source: Any, *, columns: dict[str, str] | None = None, dataset: str | None = None) -> Any:
    """A zoo table with the columns of `ZOO_COLUMNS` (accuracies as fractions).

    Args:
        source: a DataFrame or a CSV/Parquet path (RobustBench's leaderboard CSV works as it is).
        columns: zoo column -> source column, for tables whose names are not in `ZOO_ALIASES`.
        dataset: keep only rows of this data set (needs a ``dataset`` column).

    Returns:
        A DataFrame; a zoo column without a source column is all-NaN. Accuracies above 1 are read as
        percentages and divided by 100. A table with ``epochs``, ``n_train`` and ``method`` columns (and
        optionally ``attack_steps``) gets training FLOPs from them (`add_training_flops`).

    Raises:
        ScalingError: no year column, a named column that does not exist, or an unknown data set.
    """
    import pandas as pd

    from robustperf.scaling.tables import load_table

    raw = load_table(source)
    mapping = dict(columns or {})
    for name, src in mapping.items():
        if name not in ZOO_COLUMNS:
            raise ScalingError(f"unknown zoo column {name!r}; choose from {', '.join(ZOO_COLUMNS)}")
        if src not in raw.columns:
            raise ScalingError(f"column {src!r} (for {name}) not in the table; available: {sorted(map(str, raw.columns))}")
    for name in ZOO_COLUMNS:
        if name not in mapping:
            found = next((c for c in ZOO_ALIASES[name] if c in raw.columns), None)
            if found is not None:
                mapping[name] = found
    if "year" not in mapping:
        raise ScalingError(f"the table needs a year column (one of {', '.join(ZOO_ALIASES['year'])}); "
                           f"available: {sorted(map(str, raw.columns))}")
    out = pd.DataFrame({name: raw[mapping[name]] if name in mapping else np.nan for name in ZOO_COLUMNS})
    if "model_id" not in mapping:
        out["model_id"] = [f"row{i}" for i in range(len(out))]
    if "dataset" not in mapping:
        out["dataset"] = ""
    for name in ("year", "n_params", "fwd_flops", "train_flops", "robust_acc", "clean_acc"):
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
    for acc in ("robust_acc", "clean_acc"):
        if out[acc].max(skipna=True) > 1.0:
            log.info("%s (%s) is in percent: dividing by 100", acc, mapping[acc])
            out[acc] = out[acc] / 100.0
    if {"epochs", "n_train", "method"} <= set(raw.columns):  # the table holds its own recipes
        steps = raw["attack_steps"] if "attack_steps" in raw.columns else 10
        out = add_training_flops(out, pd.DataFrame({"model_id": out["model_id"], "epochs": raw["epochs"],
                                                    "n_train": raw["n_train"], "method": raw["method"],
                                                    "attack_steps": steps}))
    if dataset is not None:
        known = sorted(set(map(str, out["dataset"].dropna())))
        if dataset not in known:
            raise ScalingError(f"no rows of data set {dataset!r}; the table has {known or 'no dataset column'}")
        out = out[out["dataset"] == dataset]
    return out.reset_index(drop=True)


def add_training_flops(zoo: Any, recipes: Any, *, on: str = "model_id") -> Any:
    """Training FLOPs from a recipe table: train_flops = forward FLOPs x k_method x epochs x samples per epoch.

    Args:
        zoo: a `load_zoo` frame.
        recipes: DataFrame or CSV with ``on``, ``epochs``, ``n_train`` (samples per epoch), ``method``
            (standard, pgd_at, trades, mart, fast_at, ...) and optionally ``attack_steps`` (default 10);
            rows with a missing value are left out.
        on: the key column shared by both tables.

    Returns:
        A copy of ``zoo`` with ``train_flops`` filled where a recipe matched (existing values are kept).
    """
    from robustperf.cost.analytic import forward_equivalents  # pure Python (no torch)
    from robustperf.scaling.tables import load_table

    rec = load_table(recipes)
    need = [on, "epochs", "n_train", "method"]
    missing = [c for c in need if c not in rec.columns]
    if missing:
        raise ScalingError(f"recipe table lacks {missing}; it needs {need} (+ optional attack_steps)")
    steps = rec["attack_steps"] if "attack_steps" in rec.columns else 10
    rec = rec.assign(attack_steps=steps).dropna(subset=need + ["attack_steps"])
    k = [forward_equivalents(str(m), int(s)) for m, s in zip(rec["method"], rec["attack_steps"], strict=True)]
    per_fwd = dict(zip(rec[on], np.asarray(k, float) * rec["epochs"].astype(float) * rec["n_train"].astype(float),
                       strict=True))
    out = zoo.copy()
    derived = out["fwd_flops"] * out[on].map(per_fwd)
    out["train_flops"] = out["train_flops"].fillna(derived)
    log.info("training FLOPs for %d of %d models from %d recipes", int(derived.notna().sum()), len(out), len(rec))
    return out


# ----------------------------------------------------------------------------------------------------------------
# log-linear trends and doubling times


def _clean(year: ArrayLike, value: ArrayLike, *, positive: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(year, dtype=float)
    y = np.asarray(value, dtype=float)
    if x.shape != y.shape:
        raise ScalingError(f"year and value need the same length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if positive else True)
    return x[ok], y[ok]


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope, intercept and residual sum of squares."""
    slope, intercept = np.polyfit(x, y, 1)
    rss = float(np.sum((y - (slope * x + intercept)) ** 2))
    return float(slope), float(intercept), rss


def _doubling(slope: float) -> float:
    return LOG10_2 / slope if slope > 1e-12 else math.inf  # below: rounding noise of a flat series


@dataclass(frozen=True)
class Trend:
    """log10(value) = intercept + slope * (year - year0), fitted by least squares.

    Attributes:
        metric: what was fitted (e.g. "n_params").
        fit: the FitResult (params slope [log10 per year] and intercept; metrics r2; bootstrap of both).
        year0: the reference year of the intercept (the first year of the data).
        first_year, last_year: the range of the data.
        level: the interval level of `slope`, `doubling_years`, `growth_per_year`.
    """

    metric: str
    fit: FitResult
    year0: float
    first_year: float
    last_year: float
    level: float = 0.95

    @property
    def slope(self) -> Estimate:
        """Orders of magnitude per year."""
        return self.fit.estimate("slope", self.level)

    @property
    def r2(self) -> float:
        return float(self.fit.metrics.r2)  # type: ignore[arg-type]  # every trend fit records r2

    @property
    def n_points(self) -> int:
        return self.fit.n_points

    @property
    def doubling_years(self) -> Estimate:
        """log10(2) / slope; inf when the value does not grow (the interval's top is inf when its slope can be <= 0)."""
        s = self.slope
        if s.low is None or s.high is None:
            return Estimate(_doubling(s.value))
        return Estimate(_doubling(s.value), _doubling(s.high), _doubling(s.low), s.level)

    @property
    def growth_per_year(self) -> Estimate:
        """Factor per year, 10**slope."""
        s = self.slope
        if s.low is None or s.high is None:
            return Estimate(10.0**s.value)
        return Estimate(10.0**s.value, 10.0**s.low, 10.0**s.high, s.level)

    def predict(self, year: ArrayLike) -> np.ndarray:
        """The fitted value (not its log) at ``year``."""
        p = self.fit.params
        return 10.0 ** (p["intercept"] + p["slope"] * (np.asarray(year, dtype=float) - self.year0))

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "n_points": self.n_points, "years": [self.first_year, self.last_year],
                "r2": self.r2, "slope_log10_per_year": self.slope.to_dict(),
                "doubling_years": self.doubling_years.to_dict(), "growth_per_year": self.growth_per_year.to_dict(),
                "status": self.fit.status}


def fit_log_trend(year: ArrayLike, value: ArrayLike, *, metric: str = "value", bootstrap: int = 1000,
                  seed: int = 0, level: float = 0.95, year0: float | None = None) -> Trend:
    """Log-linear trend of a positive quantity against year, with its doubling time.

    Args:
        year: year of each model (fractional years are fine).
        value: the quantity (parameters, FLOPs, ...); rows with value <= 0 or NaN are dropped.
        metric: a name for the result.
        bootstrap: resamples of the rows for the intervals (0: none).
        seed: resampling seed.
        level: interval level.
        year0: year of the intercept (default: the first year).

    Raises:
        ScalingError: fewer than 3 usable rows or fewer than 2 distinct years.
    """
    x, y = _clean(year, value, positive=True)
    if len(x) < 3 or len(np.unique(x)) < 2:
        raise ScalingError(f"{metric}: {len(x)} usable rows over {len(np.unique(x))} distinct years; "
                           "a trend needs at least 3 rows and 2 years")
    y0 = float(x.min()) if year0 is None else float(year0)
    ly = np.log10(y)
    slope, intercept, rss = _line(x - y0, ly)
    tss = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - rss / tss if tss > 0 else float("nan")
    boot = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        fits = []
        for rows in rng.integers(0, len(x), size=(bootstrap, len(x))):
            if np.ptp(x[rows]) > 0:
                fits.append(_line(x[rows] - y0, ly[rows])[:2])
        arr = np.asarray(fits).reshape(-1, 2)
        boot = BootstrapResult({"slope": arr[:, 0], "intercept": arr[:, 1]}, bootstrap, bootstrap - len(arr), seed)
    result = FitResult(params={"slope": slope, "intercept": intercept}, status=STATUS_OK, objective=rss,
                       n_points=len(x), residuals=ly - (intercept + slope * (x - y0)), bootstrap=boot,
                       metrics=FitMetrics(r2=r2, year0=y0), message=f"log10({metric}) vs year")
    return Trend(metric, result, y0, float(x.min()), float(x.max()), level)


# ----------------------------------------------------------------------------------------------------------------
# eras


@dataclass(frozen=True)
class Eras:
    """Trends per era.

    Attributes:
        metric: the quantity.
        trends: one Trend per era, in time order.
        bounds: (first year, last year) of each era as given or detected.
        breakpoint: detected split year (era 1 has year <= breakpoint), None when given or not detected.
        detected: True when the split beat one line on BIC; False for one era (or user-given eras).
        bic_one, bic_split: BIC of one line and of the best split (NaN when not searched).
    """

    metric: str
    trends: tuple[Trend, ...]
    bounds: tuple[tuple[float, float], ...]
    breakpoint: float | None = None
    detected: bool = False
    bic_one: float = float("nan")
    bic_split: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "breakpoint": self.breakpoint, "detected": self.detected,
                "bic_one": None if math.isnan(self.bic_one) else self.bic_one,
                "bic_split": None if math.isnan(self.bic_split) else self.bic_split,
                "eras": [{"bounds": list(b), **t.to_dict()} for b, t in zip(self.bounds, self.trends, strict=True)]}


def _bic(rss: float, n: int, k: int) -> float:
    return n * math.log(max(rss, 1e-300) / n) + k * math.log(n)


def detect_eras(year: ArrayLike, value: ArrayLike, *, metric: str = "value", min_points: int = 5,
                bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Eras:
    """Find the year that best splits a log-linear trend into two eras (a breakpoint fit).

    Every split between two distinct years with at least ``min_points`` rows and 2 distinct years on
    each side is tried; the one with the least total squared error wins if its BIC (5 parameters: two
    lines and the breakpoint) is below the single line's (2 parameters). Otherwise one era is returned.
    """
    x, y = _clean(year, value, positive=True)
    ly = np.log10(y)
    years = np.unique(x)
    n = len(x)
    if n < 3 or len(years) < 2:
        raise ScalingError(f"{metric}: {n} usable rows over {len(years)} distinct years; a trend needs at least "
                           "3 rows and 2 years")
    rss_one = _line(x, ly)[2]
    best: tuple[float, float] | None = None
    for b in years[:-1]:
        left, right = x <= b, x > b
        if min(left.sum(), right.sum()) < min_points or len(np.unique(x[left])) < 2 or len(np.unique(x[right])) < 2:
            continue
        rss = _line(x[left], ly[left])[2] + _line(x[right], ly[right])[2]
        if best is None or rss < best[1]:
            best = (float(b), rss)
    bic_one = _bic(rss_one, n, 2)
    kw: dict[str, Any] = {"metric": metric, "bootstrap": bootstrap, "seed": seed, "level": level}
    if best is None or _bic(best[1], n, 5) >= bic_one:
        why = "no split leaves enough models on both sides" if best is None else "one line has the lower BIC"
        log.info("%s: one era (%s)", metric, why)
        return Eras(metric, (fit_log_trend(x, y, **kw),), ((float(x.min()), float(x.max())),), None, False, bic_one,
                    float("nan") if best is None else _bic(best[1], n, 5))
    b = best[0]
    left, right = x <= b, x > b
    trends = (fit_log_trend(x[left], y[left], **kw), fit_log_trend(x[right], y[right], **kw))
    bounds = ((float(x[left].min()), float(x[left].max())), (float(x[right].min()), float(x[right].max())))
    return Eras(metric, trends, bounds, b, True, bic_one, _bic(best[1], n, 5))


def fit_eras(year: ArrayLike, value: ArrayLike, bounds: Sequence[tuple[float, float]], *, metric: str = "value",
             bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Eras:
    """Log-linear trends within user-given eras, each (first year, last year) inclusive."""
    x, y = _clean(year, value, positive=True)
    if not bounds:
        raise ScalingError("give at least one era as (first year, last year)")
    trends = []
    for lo, hi in bounds:
        if hi < lo:
            raise ScalingError(f"era ({lo}, {hi}) ends before it starts")
        keep = (x >= lo) & (x <= hi)
        try:
            trends.append(fit_log_trend(x[keep], y[keep], metric=metric, bootstrap=bootstrap, seed=seed, level=level))
        except ScalingError as err:
            raise ScalingError(f"era {lo:g}-{hi:g}: {err}") from None
    return Eras(metric, tuple(trends), tuple((float(lo), float(hi)) for lo, hi in bounds))


def parse_eras(text: str) -> list[tuple[float, float]]:
    """'2018-2020,2021-2024' -> [(2018, 2020), (2021, 2024)]."""
    out = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            if not sep:
                raise ValueError
            out.append((float(lo), float(hi)))
        except ValueError:
            raise ScalingError(f"cannot read era {part.strip()!r}: write eras as FIRST-LAST years, "
                               "comma-separated (e.g. 2018-2020,2021-2024)") from None
    return out


# ----------------------------------------------------------------------------------------------------------------
# robust accuracy against year


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def select_best(year: np.ndarray, acc: np.ndarray, how: str) -> np.ndarray:
    """Row mask: "all", "best_per_year" (the best model of each year) or "record" (models that beat every earlier year)."""
    if how == "all":
        return np.ones(len(year), dtype=bool)
    if how not in ("best_per_year", "record"):
        raise ScalingError(f"unknown selection {how!r}; choose all, best_per_year or record")
    keep = np.zeros(len(year), dtype=bool)
    record = -np.inf
    for y in np.unique(year):
        rows = np.flatnonzero(year == y)
        i = rows[np.argmax(acc[rows])]
        if how == "best_per_year" or acc[i] > record:
            keep[i] = True
        record = max(record, acc[i])
    return keep


@dataclass(frozen=True)
class AccuracyTrend:
    """logit(accuracy / ceiling) = intercept + slope * (year - year0): a trend that never leaves [0, ceiling].

    Attributes:
        fit: FitResult (params slope [logit per year], intercept; metrics r2 on the logit scale; bootstrap).
        year0: reference year of the intercept.
        ceiling: the asymptote (1: perfect accuracy; e.g. 0.9 for the human level of papers/001).
        selection: which rows were fitted ("best_per_year", "record" or "all").
        years, accuracy: the fitted points.
        level: interval level of `predict`.
    """

    fit: FitResult
    year0: float
    ceiling: float
    selection: str
    years: np.ndarray = field(repr=False)
    accuracy: np.ndarray = field(repr=False)
    level: float = 0.95

    def _curve(self, params: dict[str, float], year: np.ndarray) -> np.ndarray:
        return self.ceiling * _expit(params["intercept"] + params["slope"] * (year - self.year0))

    def predict(self, year: float) -> Estimate:
        """Accuracy (fraction) at ``year`` with the bootstrap interval, always inside [0, ceiling]."""
        value = float(self._curve(self.fit.params, np.asarray(year, dtype=float)))
        if self.fit.bootstrap is None:
            return Estimate(value)
        b = self.fit.bootstrap.samples
        draws = self.ceiling * _expit(b["intercept"] + b["slope"] * (year - self.year0))
        tail = 50.0 * (1.0 - self.level)
        lo, hi = np.percentile(draws, [tail, 100.0 - tail])
        return Estimate(value, float(lo), float(hi), self.level)

    def curve(self, years: ArrayLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Central curve and the pointwise interval (None without a bootstrap) over ``years``."""
        ys = np.asarray(years, dtype=float)
        mid = self._curve(self.fit.params, ys)
        if self.fit.bootstrap is None:
            return mid, None, None
        b = self.fit.bootstrap.samples
        draws = self.ceiling * _expit(b["intercept"][:, None] + b["slope"][:, None] * (ys[None, :] - self.year0))
        tail = 50.0 * (1.0 - self.level)
        return mid, np.percentile(draws, tail, axis=0), np.percentile(draws, 100.0 - tail, axis=0)

    def to_dict(self, years: Sequence[float] = ()) -> dict[str, Any]:
        return {"selection": self.selection, "ceiling": self.ceiling, "n_points": self.fit.n_points,
                "slope_logit_per_year": self.fit.estimate("slope", self.level).to_dict(), "r2_logit": self.fit.metrics.r2,
                "forecasts": {str(int(y) if float(y).is_integer() else y): self.predict(y).to_dict() for y in years}}


def fit_accuracy_trend(year: ArrayLike, accuracy: ArrayLike, *, select: str = "best_per_year", ceiling: float = 1.0,
                       bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> AccuracyTrend:
    """Robust accuracy against year on the logit scale, so extrapolations stay in [0, ceiling].

    Args:
        year: year of each model.
        accuracy: robust accuracy as a fraction (not percent).
        select: "best_per_year" (default: the state of the art of each year), "record" or "all".
        ceiling: upper asymptote of accuracy (1.0, or a human-level limit such as 0.9).
        bootstrap, seed, level: resampling of the selected points for the intervals.

    Raises:
        ScalingError: accuracies outside (0, ceiling), or fewer than 3 selected points over 2 years.
    """
    x, a = _clean(year, accuracy, positive=False)
    if not 0.0 < ceiling <= 1.0:
        raise ScalingError(f"ceiling must be in (0, 1], got {ceiling}")
    if len(a) and (a.min() < 0 or a.max() > 1):
        raise ScalingError("accuracy must be a fraction in [0, 1]; divide percentages by 100 (load_zoo does)")
    if len(a) and a.max() >= ceiling:
        raise ScalingError(f"an accuracy of {a.max():.4g} is at or above the ceiling {ceiling}; raise the ceiling")
    keep = select_best(x, a, select)
    x, a = x[keep], np.clip(a[keep], 1e-3, None)  # a broken defence at 0 % would sit at logit -inf
    if len(x) < 3 or len(np.unique(x)) < 2:
        raise ScalingError(f"{len(x)} points over {len(np.unique(x))} years after selecting {select!r}; "
                           "an accuracy trend needs at least 3 points and 2 years (try --select all)")
    y0 = float(x.min())
    z = _logit(a / ceiling)
    slope, intercept, rss = _line(x - y0, z)
    tss = float(np.sum((z - z.mean()) ** 2))
    boot = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        fits = [_line(x[r] - y0, z[r])[:2] for r in rng.integers(0, len(x), size=(bootstrap, len(x)))
                if np.ptp(x[r]) > 0]
        arr = np.asarray(fits).reshape(-1, 2)
        boot = BootstrapResult({"slope": arr[:, 0], "intercept": arr[:, 1]}, bootstrap, bootstrap - len(arr), seed)
    fit = FitResult(params={"slope": slope, "intercept": intercept}, status=STATUS_OK, objective=rss, n_points=len(x),
                    residuals=z - (intercept + slope * (x - y0)), bootstrap=boot,
                    metrics=FitMetrics(r2=1.0 - rss / tss if tss > 0 else float("nan"), year0=y0),
                    message=f"logit(robust accuracy / {ceiling:g}) vs year")
    return AccuracyTrend(fit, y0, float(ceiling), select, x, a, level)


# ----------------------------------------------------------------------------------------------------------------
# efficiency frontier (Thompson et al. 2020)


@dataclass(frozen=True)
class EfficiencyFrontier:
    """log10(1 / error) = alpha + beta * log10(compute) + gamma * (year - year0) at a high quantile.

    Attributes:
        fit: FitResult with params alpha, beta (per decade of compute), gamma (per year); metrics
            quantile, coverage (share of models on or below the frontier), compute (the column used).
        year0: reference year of alpha.
        quantile: the regression quantile (0.9: the 10 % most efficient models lie above).
        level: interval level.
    """

    fit: FitResult
    year0: float
    quantile: float
    level: float = 0.95

    def accuracy(self, compute: ArrayLike, year: ArrayLike) -> np.ndarray:
        """Frontier accuracy (fraction) of a model of this compute in this year."""
        p = self.fit.params
        perf = p["alpha"] + p["beta"] * np.log10(np.asarray(compute, float)) + p["gamma"] * (np.asarray(year, float)
                                                                                               - self.year0)
        return 1.0 - 10.0 ** (-perf)

    def compute_for(self, accuracy: float, year: float) -> Estimate:
        """Compute at which the frontier reaches ``accuracy`` in ``year`` (inf if the frontier does not rise with compute)."""
        if not 0.0 < accuracy < 1.0:
            raise ScalingError(f"target accuracy must be a fraction in (0, 1), got {accuracy}")

        def solve(alpha: Any, beta: Any, gamma: Any) -> Any:
            perf = -math.log10(1.0 - accuracy)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = 10.0 ** ((perf - alpha - gamma * (year - self.year0)) / beta)
            return np.where(np.asarray(beta) > 0, out, np.inf)

        p = self.fit.params
        value = float(solve(p["alpha"], p["beta"], p["gamma"]))
        if self.fit.bootstrap is None:
            return Estimate(value)
        b = self.fit.bootstrap.samples
        draws = solve(b["alpha"], b["beta"], b["gamma"])
        tail = 50.0 * (1.0 - self.level)
        lo, hi = np.percentile(draws, [tail, 100.0 - tail])
        return Estimate(value, float(lo), float(hi), self.level)

    def to_dict(self) -> dict[str, Any]:
        return {"quantile": self.quantile, "year0": self.year0, "n_points": self.fit.n_points,
                "coverage": self.fit.metrics.coverage, "compute": self.fit.metrics.compute,
                **{k: self.fit.estimate(k, self.level).to_dict() for k in ("alpha", "beta", "gamma")}}


def _quantile_fit(feat: np.ndarray, y: np.ndarray, quantile: float) -> np.ndarray:
    from sklearn.linear_model import QuantileRegressor

    model = QuantileRegressor(quantile=quantile, alpha=0.0, solver="highs").fit(feat, y)
    return np.array([model.intercept_, *model.coef_], dtype=float)


def fit_efficiency_frontier(compute: ArrayLike, accuracy: ArrayLike, year: ArrayLike, *, quantile: float = 0.9,
                            bootstrap: int = 200, seed: int = 0, level: float = 0.95,
                            compute_name: str = "compute") -> EfficiencyFrontier:
    """Quantile regression of log10(1/error) on log10(compute) and year (Thompson et al. 2020; papers/004 XIV.B).

    Args:
        compute: FLOPs (forward or training) per model, > 0.
        accuracy: robust accuracy as a fraction.
        year: year per model (the time trend stands in for algorithmic progress).
        quantile: 0.9 fits the frontier of the 10 % most efficient models.
        bootstrap, seed, level: row resamples for intervals of alpha, beta, gamma.
        compute_name: recorded in the result's metrics.

    Raises:
        ScalingError: fewer than 5 usable rows, or a single year or compute value.
    """
    c = np.asarray(compute, float)
    a = np.asarray(accuracy, float)
    t = np.asarray(year, float)
    if not (c.shape == a.shape == t.shape):
        raise ScalingError(f"compute, accuracy and year need the same length, got {c.shape}, {a.shape}, {t.shape}")
    if not 0.0 < quantile < 1.0:
        raise ScalingError(f"quantile must be in (0, 1), got {quantile}")
    ok = np.isfinite(c) & np.isfinite(a) & np.isfinite(t) & (c > 0) & (a > 0) & (a < 1)
    c, a, t = c[ok], a[ok], t[ok]
    if len(c) < 5 or np.ptp(t) == 0 or np.ptp(c) == 0:
        raise ScalingError(f"{len(c)} usable rows (compute > 0, 0 < accuracy < 1, a year); the frontier needs at "
                           "least 5 over 2+ years and 2+ compute values")
    y0 = float(t.min())
    feat = np.column_stack([np.log10(c), t - y0])
    perf = -np.log10(1.0 - a)
    coef = _quantile_fit(feat, perf, quantile)
    resid = perf - (coef[0] + feat @ coef[1:])
    boot = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        fits = []
        for rows in rng.integers(0, len(c), size=(bootstrap, len(c))):
            if np.ptp(feat[rows, 0]) > 0 and np.ptp(feat[rows, 1]) > 0:
                fits.append(_quantile_fit(feat[rows], perf[rows], quantile))
        arr = np.asarray(fits).reshape(-1, 3)
        boot = BootstrapResult({"alpha": arr[:, 0], "beta": arr[:, 1], "gamma": arr[:, 2]}, bootstrap,
                               bootstrap - len(arr), seed)
    fit = FitResult(params={"alpha": float(coef[0]), "beta": float(coef[1]), "gamma": float(coef[2])},
                    status=STATUS_OK,
                    objective=float(np.sum(np.where(resid >= 0, quantile * resid, (quantile - 1) * resid))),
                    n_points=len(c), residuals=resid, bootstrap=boot,
                    metrics=FitMetrics(quantile=quantile, coverage=float(np.mean(resid <= 1e-9)), year0=y0,
                                       compute=compute_name),
                    message="log10(1/error) ~ log10(compute) + year")
    return EfficiencyFrontier(fit, y0, quantile, level)


# ----------------------------------------------------------------------------------------------------------------
# everything for one zoo


@dataclass(frozen=True)
class ZooTrends:
    """All trends of one zoo table (one data set): `zoo_trends`'s result.

    Attributes:
        label: what the table is (e.g. "cifar10").
        zoo: the `load_zoo` frame the trends were fitted on.
        trends: metric -> Eras (one era unless detected or given); metrics without enough data are absent.
        accuracy: the robust-accuracy trend, or None.
        frontier: the efficiency frontier, or None.
        target_years: years the accuracy is forecast for.
        skipped: metric -> why it was not fitted.
    """

    label: str
    zoo: Any = field(repr=False)
    trends: dict[str, Eras]
    accuracy: AccuracyTrend | None
    frontier: EfficiencyFrontier | None
    target_years: tuple[float, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "n_models": len(self.zoo),
                "trends": {m: e.to_dict() for m, e in self.trends.items()},
                "accuracy": self.accuracy.to_dict(self.target_years) if self.accuracy else None,
                "frontier": self.frontier.to_dict() if self.frontier else None, "skipped": dict(self.skipped)}


def zoo_trends(zoo: Any, *, label: str = "", eras: Sequence[tuple[float, float]] | None = None,
               detect: bool = True, min_era_points: int = 5, target_years: Sequence[float] = (2027,),
               select: str = "best_per_year", ceiling: float = 1.0, quantile: float = 0.9, bootstrap: int = 1000,
               seed: int = 0, level: float = 0.95) -> ZooTrends:
    """Doubling times of parameters, forward and training FLOPs (per era), the accuracy trend and the frontier.

    A part without enough data is skipped with its reason in ``skipped`` (never fitted on too little).
    """
    skipped: dict[str, str] = {}
    trends: dict[str, Eras] = {}
    kw: dict[str, Any] = {"bootstrap": bootstrap, "seed": seed, "level": level}
    for metric in TREND_METRICS:
        if zoo[metric].notna().sum() == 0:
            skipped[metric] = ("no values in the table" + (" (training FLOPs need a train_flops column or a recipe "
                               "file: add_training_flops / --recipes)" if metric == "train_flops" else ""))
            continue
        try:
            if eras:
                trends[metric] = fit_eras(zoo["year"], zoo[metric], eras, metric=metric, **kw)
            elif detect:
                trends[metric] = detect_eras(zoo["year"], zoo[metric], metric=metric, min_points=min_era_points, **kw)
            else:
                x, y = _clean(zoo["year"], zoo[metric], positive=True)
                trends[metric] = Eras(metric, (fit_log_trend(x, y, metric=metric, **kw),),
                                      ((float(x.min()) if len(x) else math.nan, float(x.max()) if len(x) else math.nan),))
        except ScalingError as err:
            skipped[metric] = str(err)
    accuracy = None
    try:
        accuracy = fit_accuracy_trend(zoo["year"], zoo["robust_acc"], select=select, ceiling=ceiling, **kw)
    except ScalingError as err:
        skipped["robust_acc"] = str(err)
    frontier = None
    compute = "train_flops" if zoo["train_flops"].notna().sum() >= 5 else "fwd_flops"
    try:
        frontier = fit_efficiency_frontier(zoo[compute], zoo["robust_acc"], zoo["year"], quantile=quantile,
                                           bootstrap=min(bootstrap, 200), seed=seed, level=level, compute_name=compute)
    except ScalingError as err:
        skipped["frontier"] = str(err)
    return ZooTrends(label, zoo, trends, accuracy, frontier, tuple(target_years), skipped)


def write_trends(result: ZooTrends, path: str | Path) -> Path:
    """The trends as JSON (atomic: temp file + rename); infinite or undefined numbers are written as null."""
    import json
    import os

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(_finite_json(result.to_dict()), indent=2))
    os.replace(tmp, target)
    return target


def _finite_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
