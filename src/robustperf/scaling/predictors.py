"""Recipe -> robustness predictors.

- `fit_robustness_predictor`: gradient-boosting regression from recipe features (parameters, synthetic
  data, activation, loss, PGD steps, EMA) to AutoAttack accuracy, 50 estimators, depth 5, 70:30 split,
  with feature importances (Debenedetti et al. 2023, papers/002 Sec. 3.1).
- `fit_frontier_quantile`: quantile regression of the efficient frontier, robust accuracy against
  log compute at a high quantile (RobustPerf notes, papers/004 Sec. XIV).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from robustperf.scaling.fit_metrics import FitMetrics
from robustperf.scaling.result import STATUS_OK, FitResult, ScalingError


@dataclass(frozen=True)
class PredictorResult:
    """A fitted recipe -> robustness model and how well it predicts held-out runs.

    Attributes:
        model: the fitted scikit-learn estimator (on the one-hot encoded features).
        features: input columns, in order.
        encoded_columns: columns after one-hot encoding.
        r2_train, r2_test: coefficient of determination on the two parts of the split.
        importances: impurity importance per input feature (one-hot columns summed), largest first.
        n_train, n_test: sizes of the split.
        y_test, y_test_pred: measured and predicted target on the held-out split (the parity plot's data).
    """

    model: Any
    features: tuple[str, ...]
    encoded_columns: tuple[str, ...]
    r2_train: float
    r2_test: float
    importances: dict[str, float]
    n_train: int
    n_test: int
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    y_test_pred: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def predict(self, frame: Any) -> np.ndarray:
        """Predictions for new recipes (same feature columns)."""
        x = _encode(frame[list(self.features)])
        x = x.reindex(columns=list(self.encoded_columns), fill_value=0.0)
        return self.model.predict(x.to_numpy(dtype=float))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "r2_train": self.r2_train, "r2_test": self.r2_test,
                "importances": self.importances, "n_train": self.n_train, "n_test": self.n_test}


def _encode(frame: Any) -> Any:
    """Booleans -> 0/1, numbers kept, strings one-hot ("feature=value")."""
    import pandas as pd

    parts = []
    for col in frame.columns:
        s = frame[col]
        if s.dtype == bool or pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(col))
        else:
            parts.append(pd.get_dummies(s.astype(str), prefix=col, prefix_sep="=").astype(float))
    return pd.concat(parts, axis=1)


def fit_robustness_predictor(frame: Any, features: Sequence[str], target: str, *, n_estimators: int = 50,
                             max_depth: int = 5, test_size: float = 0.3, seed: int = 0) -> PredictorResult:
    """Gradient boosting from recipe features to a robustness metric (papers/002 Sec. 3.1).

    Args:
        frame: a pandas DataFrame with one row per run.
        features: feature columns (bool, numeric, or categorical strings).
        target: the column to predict (e.g. "aa_robust_acc").
        n_estimators, max_depth: boosting settings (papers/002: 50 and 5).
        test_size: held-out share (papers/002: 0.3).
        seed: split and boosting seed.
    """
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split

    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise ScalingError(f"columns {missing} not in the table; available: {sorted(map(str, frame.columns))}")
    data = frame[[*features, target]].dropna()
    if len(data) < 10:
        raise ScalingError(f"{len(data)} complete rows; the predictor needs at least 10")
    x = _encode(data[list(features)])
    y = data[target].to_numpy(dtype=float)
    x_tr, x_te, y_tr, y_te = train_test_split(x.to_numpy(dtype=float), y, test_size=test_size, random_state=seed)
    model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    model.fit(x_tr, y_tr)
    per_column = dict(zip(x.columns, model.feature_importances_, strict=True))
    importances = {f: float(sum(v for c, v in per_column.items() if c == f or c.startswith(f"{f}="))) for f in features}
    importances = dict(sorted(importances.items(), key=lambda kv: -kv[1]))
    pred_te = model.predict(x_te)
    return PredictorResult(model, tuple(features), tuple(x.columns), float(r2_score(y_tr, model.predict(x_tr))),
                           float(r2_score(y_te, pred_te)), importances, len(y_tr), len(y_te), y_te, pred_te)


def fit_frontier_quantile(x: ArrayLike, y: ArrayLike, *, quantile: float = 0.9, log_x: bool = True,
                          alpha: float = 0.0) -> FitResult:
    """Linear quantile regression y ~ slope * log10(x) + intercept at a high quantile (the efficient frontier).

    Args:
        x: compute (or cost) per run, > 0 when ``log_x``.
        y: robust accuracy per run.
        quantile: the frontier quantile (0.9: 90 % of runs lie below the line).
        log_x: regress on log10(x) (compute spans orders of magnitude).
        alpha: L1 penalty of scikit-learn's QuantileRegressor (0: none).

    Returns:
        FitResult (law "linear" in log10(x) when ``log_x``) with metrics quantile and coverage (share below).
    """
    from sklearn.linear_model import QuantileRegressor

    xx = np.asarray(x, dtype=float)
    yy = np.asarray(y, dtype=float)
    ok = np.isfinite(xx) & np.isfinite(yy) & ((xx > 0) if log_x else True)
    if ok.sum() < 3:
        raise ScalingError(f"{int(ok.sum())} usable points; quantile regression needs at least 3")
    feat = np.log10(xx[ok]) if log_x else xx[ok]
    model = QuantileRegressor(quantile=quantile, alpha=alpha, solver="highs").fit(feat[:, None], yy[ok])
    pred = model.predict(feat[:, None])
    resid = yy[ok] - pred
    coverage = float(np.mean(resid <= 1e-9))
    return FitResult(params={"slope": float(model.coef_[0]), "intercept": float(model.intercept_)}, status=STATUS_OK,
                     objective=float(np.sum(np.where(resid >= 0, quantile * resid, (quantile - 1) * resid))),
                     n_points=int(ok.sum()), residuals=resid, law="linear",
                     metrics=FitMetrics(quantile=quantile, coverage=coverage, log_x=log_x))
