"""Scaling laws and forecasts for adversarial robustness (REFERENCE.md section 4).

Pure numpy/scipy/scikit-learn/pandas: importable without torch.

Laws (frozen objects with named parameters, ``__call__``):
    LAWS, create_law(name, **params) (`robustperf.scaling.catalogue`), PowerLaw, ChinchillaLaw, Approach2Law, Approach3Law, LinearMap;
    published: "bartoldson2024_approach2" (B, E at FID 0), "bartoldson2024_approach2_fid1.65" (notebook
    convention), "bartoldson2024_approach2_rounded", "bartoldson2024_approach3", "bartoldson2024_approach3_rounded",
    "bartoldson2024_loss_to_accuracy", "debenedetti2023_powerlaw", "debenedetti2023_cost_powerlaw".

Fitters (return a frozen FitResult with a `FitStatus`; a failed optimisation, or with a bootstrap a parameter
the data do not pin down (`robustperf.scaling.identify`), gives a status other than OK and a FitWarning):
    fit_power_law, fit_envelope_power_law, envelope_points, fit_approach1, fit_chinchilla, fit_approach2,
    fit_approach3, fit_loss_to_accuracy, fit_logit_loss_to_accuracy (bounded map), bartoldson_keep_mask, extrapolation_validation.

Allocation and forecasts:
    compute_optimal, optimal_loss, model_size_tradeoff, flops_per_param_sample, forecast, forecast_loss,
    forecast_accuracy, forecast_flops, forecast_cost, ceiling_loss, estimate_derived (bootstrap interval of any
    quantity computed from a fitted law), bounded_accuracy and accuracy_validity (accuracies stay in [0, 1]).

Predictors and fronts:
    fit_robustness_predictor, fit_frontier_quantile, pareto_front, pareto_mask.

Inputs:
    load_table (CSV / Parquet / DataFrame / runs directory), fit_table(source, law, x=..., y=..., n=..., d=...,
    loss=..., fid=..., **fit_kwargs), load_curves(runs_dir) (per-epoch curves for Approach 1),
    STORE_COLUMNS (default run-index columns), FIT_LAWS / fit_laws() (the registered laws with a ``fit_table``).

A loss law L(N, D) is a `SurfaceLaw` (``fit``, ``predict``, ``ceiling``, ``allocate``); a new one is a file
with its class plus one ``LAWS.register`` line in `robustperf.scaling.catalogue`.
"""

from robustperf.scaling.accuracy_map import LogitLinearMap, fit_logit_loss_to_accuracy
from robustperf.scaling.allocation import (
    DEFAULT_FLOPS_PER_PARAM_SAMPLE,
    Allocation,
    Tradeoff,
    compute_optimal,
    flops_per_param_sample,
    model_size_tradeoff,
    optimal_loss,
)
from robustperf.scaling.catalogue import LAWS, create_law, law_class, surface_law
from robustperf.scaling.envelope import envelope_points, fit_approach1, fit_envelope_power_law, fit_power_law
from robustperf.scaling.fit import FitOptions, bartoldson_keep_mask, fit_approach2, fit_approach3, fit_chinchilla
from robustperf.scaling.forecasting import (
    CostForecast,
    FlopsForecast,
    Forecast,
    accuracy_validity,
    bounded_accuracy,
    ceiling_loss,
    estimate_derived,
    forecast,
    forecast_accuracy,
    forecast_cost,
    forecast_flops,
    forecast_loss,
)
from robustperf.scaling.laws import (
    Approach1Law,
    Approach2Law,
    Approach3Law,
    ChinchillaLaw,
    LinearMap,
    PowerLaw,
    SurfaceLaw,
)
from robustperf.scaling.pareto import pareto_front, pareto_mask
from robustperf.scaling.predictors import PredictorResult, fit_frontier_quantile, fit_robustness_predictor
from robustperf.scaling.published import PUBLISHED
from robustperf.scaling.regression import fit_loss_to_accuracy
from robustperf.scaling.result import (
    BootstrapResult,
    Estimate,
    FitResult,
    FitStatus,
    FitWarning,
    ScalingError,
    load_fit,
)
from robustperf.scaling.saturating import SaturatingPowerLaw, fit_saturating_envelope
from robustperf.scaling.tables import (
    STORE_COLUMNS,
    TableColumns,
    fit_laws,
    fit_table,
    load_curves,
    load_table,
    study_surfaces,
)
from robustperf.scaling.validation import ExtrapolationResult, extrapolation_validation

__all__ = [
    "DEFAULT_FLOPS_PER_PARAM_SAMPLE",
    "FIT_LAWS",
    "LAWS",
    "PUBLISHED",
    "STORE_COLUMNS",
    "Allocation",
    "Approach1Law",
    "Approach2Law",
    "Approach3Law",
    "BootstrapResult",
    "ChinchillaLaw",
    "CostForecast",
    "Estimate",
    "ExtrapolationResult",
    "FitOptions",
    "FitResult",
    "FitStatus",
    "FitWarning",
    "FlopsForecast",
    "Forecast",
    "LinearMap",
    "LogitLinearMap",
    "SaturatingPowerLaw",
    "fit_saturating_envelope",
    "PowerLaw",
    "PredictorResult",
    "ScalingError",
    "SurfaceLaw",
    "TableColumns",
    "Tradeoff",
    "accuracy_validity",
    "bartoldson_keep_mask",
    "bounded_accuracy",
    "ceiling_loss",
    "compute_optimal",
    "create_law",
    "envelope_points",
    "estimate_derived",
    "extrapolation_validation",
    "fit_approach1",
    "fit_approach2",
    "fit_approach3",
    "fit_chinchilla",
    "fit_envelope_power_law",
    "fit_frontier_quantile",
    "fit_loss_to_accuracy",
    "fit_logit_loss_to_accuracy",
    "fit_power_law",
    "fit_robustness_predictor",
    "fit_laws",
    "fit_table",
    "flops_per_param_sample",
    "forecast",
    "forecast_accuracy",
    "forecast_cost",
    "forecast_flops",
    "forecast_loss",
    "load_curves",
    "load_fit",
    "law_class",
    "load_table",
    "model_size_tradeoff",
    "optimal_loss",
    "pareto_front",
    "pareto_mask",
    "study_surfaces",
    "surface_law",
]


def __getattr__(name: str) -> object:
    if name == "FIT_LAWS":  # read from the registry when asked, so a plug-in law registered later is in it
        return fit_laws()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
