"""A fit's metrics are typed fields, and a fit saved before they were typed loads into them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from robustperf.scaling import FitResult, fit_approach2, load_fit
from robustperf.scaling.fit_metrics import EarnedOk, FitMetrics, Identifiability, LogCentre

# the metrics of an Approach 2 fit as `FitResult.save` wrote them when they were a plain dict
OLD_SAVED = {
    "law": "approach2", "params": {"A": 5.0, "B": 20.0, "E": 0.5, "alpha": 0.3, "beta": 0.3, "eps": 0.1, "zeta": 0.2},
    "law_kwargs": {"fid_ref": 1.65}, "status": "poorly_identified", "objective": 0.01, "n_points": 40,
    "metrics": {"n_base": 20, "quality_fitted": True, "r2_log": 0.99, "n_starts": 3125,
                "log_centre": {"N": 16.1, "D": 15.2}, "stage2_given_stage1": {"eps": [0.05, 0.15], "zeta": [0.1, 0.3]},
                "identifiability": {"checked": True, "level": 0.95, "poorly_identified": ["zeta"],
                                    "reasons": ["zeta = 0.2: 95 % interval [-1, 1] is wider than its value"],
                                    "n_resamples": 30, "n_failed": 0},
                "earned_ok": {"checked_by": "bootstrap", "axis_spans": {"N": 100.0, "D": 30.0}, "reasons": {}},
                "from_a_newer_version": {"kept": 1}},
    "message": "ok", "residual_rms": 0.01, "bootstrap": None, "bootstrap_samples": None,
}


def test_an_old_saved_fit_loads_into_typed_fields(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(OLD_SAVED))
    fit = load_fit(path)
    m = fit.metrics
    assert isinstance(m, FitMetrics) and m.n_base == 20 and m.quality_fitted is True and m.n_starts == 3125
    assert m.log_centre == LogCentre(16.1, 15.2)
    assert m.stage2_given_stage1 == {"eps": (0.05, 0.15), "zeta": (0.1, 0.3)}
    assert isinstance(m.identifiability, Identifiability) and m.identifiability.names == ("zeta",)
    assert fit.poorly_identified == ["zeta"] and "zeta" in fit.caveat()
    assert m.earned_ok == EarnedOk("bootstrap", {"N": 100.0, "D": 30.0}, {})
    assert m.extra == {"from_a_newer_version": {"kept": 1}}
    # saved again, it is the same JSON object (typed fields written back in their dict form)
    again = json.loads(fit.save(tmp_path / "again.json").read_text())
    assert again["metrics"] == OLD_SAVED["metrics"]
    assert load_fit(tmp_path / "again.json").metrics == m


def test_metrics_read_like_the_dict_they_replaced():
    m = FitMetrics(r2=0.9, y_range=(0.2, 0.5), identifiability=Identifiability(checked=False, reason="no bootstrap"))
    assert dict(m) == {"r2": 0.9, "y_range": [0.2, 0.5], "identifiability": {"checked": False, "reason": "no bootstrap"}}
    assert m["y_range"] == [0.2, 0.5] and m.get("x_range") is None and "x_range" not in m
    with pytest.raises(KeyError):
        m["x_range"]
    fit = FitResult(params={}, status="ok", objective=0.0, n_points=0, metrics=m)
    changed = replace(fit, metrics={**fit.metrics, "y_range": [30.0, 45.0]})  # the dict idiom still types
    assert changed.metrics.y_range == (30.0, 45.0) and changed.metrics.r2 == 0.9
    assert changed.metrics.identifiability == m.identifiability


def test_a_fitter_fills_the_typed_fields():
    rng = np.random.default_rng(0)
    n, d = 10 ** rng.uniform(6, 8, 30), 10 ** rng.uniform(6, 8, 30)
    loss = 1.0 + 30 / n**0.3 + 40 / d**0.3
    fit = fit_approach2(n, d, loss, grid={"a": (1.0, 3.0), "b": (1.0, 3.0), "e": (0.0,), "alpha": (0.3,),
                                          "beta": (0.3,)})
    assert fit.metrics.n_base == 30 and fit.metrics.quality_fitted is False
    assert fit.metrics.log_centre == LogCentre(pytest.approx(np.mean(np.log(n))), pytest.approx(np.mean(np.log(d))))
    assert fit.metrics.identifiability == Identifiability(checked=False,
                                                          reason="no bootstrap (identifiability not checked)")
    assert fit.metrics.earned_ok is not None and fit.metrics.earned_ok.checked_by.startswith("local curvature")
