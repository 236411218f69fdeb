"""A new L(N, D) law is one class plus its registration line, and every path that fits one reaches it.

The law below is defined here, registered in `LAWS` the way `robustperf.scaling.catalogue` registers the
built-ins, and then fitted, predicted from and allocated through the same doors `robustperf fit` and a
study's ``fit.surface`` use: nothing else in the package names it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.report.analysis import _fit_surface
from robustperf.scaling import (
    LAWS,
    FitResult,
    FitStatus,
    SurfaceLaw,
    compute_optimal,
    create_law,
    fit_laws,
    fit_table,
    forecast,
    study_surfaces,
)
from robustperf.sweep.study import FitSpec

NAME = "test_floorless"
TRUTH = {"A": 40.0, "B": 90.0, "alpha": 0.3, "beta": 0.35}


@dataclass(frozen=True)
class FloorlessLaw(SurfaceLaw):
    """L = A / N^alpha + B / D^beta: Chinchilla without the irreducible term (its ceiling is a loss of 0)."""

    A: float
    B: float
    alpha: float
    beta: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("A", "B", "alpha", "beta")
    uses_fid: ClassVar[bool] = False

    def __call__(self, N: Any, D: Any, fid: Any = 0.0) -> Any:
        return self.A / np.asarray(N, dtype=float) ** self.alpha + self.B / np.asarray(D, dtype=float) ** self.beta

    def ceiling(self, fid: float = 0.0) -> float:
        return 0.0

    @classmethod
    def fit(cls, N: Any, D: Any, L: Any, fid: Any = None, *, bootstrap: int = 0, seed: int = 0) -> FitResult:
        """Exponents on a grid, A and B by least squares at each: exact on noiseless data at grid exponents."""
        n, d, loss = (np.asarray(v, dtype=float) for v in (N, D, L))
        best: tuple[float, dict[str, float]] = (np.inf, {})
        for alpha, beta in itertools.product(np.round(np.arange(0.05, 0.61, 0.05), 2), repeat=2):
            design = np.stack([n**-alpha, d**-beta], axis=1)
            (a, b), *_ = np.linalg.lstsq(design, loss, rcond=None)
            sse = float(np.sum((design @ [a, b] - loss) ** 2))
            if sse < best[0]:
                best = (sse, {"A": float(a), "B": float(b), "alpha": float(alpha), "beta": float(beta)})
        return FitResult(params=best[1], status=FitStatus.OK, objective=best[0], n_points=len(n), law=NAME)


@pytest.fixture(scope="module", autouse=True)
def registered():
    LAWS.register(NAME, FloorlessLaw)  # the one registration line a new law needs
    yield
    LAWS._items.pop(NAME)  # leave the registry as the other test modules expect it


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    truth = FloorlessLaw(**TRUTH)
    grid = list(itertools.product([1e5, 4e5, 1.6e6, 6.4e6], [1e5, 1e6, 1e7]))
    frame = pd.DataFrame(grid, columns=["params", "samples"])
    frame["adv_loss"] = truth(frame.params, frame.samples)
    path = tmp_path_factory.mktemp("plugin") / "runs.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_the_registry_alone_makes_it_fittable_by_name_and_by_a_study():
    assert NAME in fit_laws() and NAME in study_surfaces()
    assert FitSpec(surface=NAME).surface == NAME
    with pytest.raises(ValueError, match=f"choose one of .*{NAME}"):
        FitSpec(surface="no_such_law")


def test_fit_predict_allocate_through_fit_table(runs):
    frame, _ = runs
    fit = fit_table(frame, NAME, n="params", d="samples", loss="adv_loss")
    assert fit.ok and fit.law == NAME
    assert fit.params == pytest.approx(TRUTH, rel=1e-6)
    law = fit.to_law()
    assert isinstance(law, FloorlessLaw) and law == create_law(NAME, **fit.params, source="fitted by robustperf")
    assert law.predict(1e6, 1e6) == pytest.approx(FloorlessLaw(**TRUTH)(1e6, 1e6))
    # the default allocation (numerical, along k N D = C) finds the best split a brute-force scan finds
    flops, k = 1e15, 7822.0
    alloc = compute_optimal(law, flops, k=k)
    n_scan = np.geomspace(1.0, flops / k, 200_001)
    n_best = n_scan[np.argmin(law(n_scan, flops / (k * n_scan)))]
    n_star = alloc.N
    assert n_star == pytest.approx(n_best, rel=1e-3)
    assert alloc.N * alloc.D * k == pytest.approx(flops)
    fc = forecast(fit, flops=flops, k=k)
    assert fc.N.value == pytest.approx(alloc.N) and fc.loss.value == pytest.approx(alloc.loss)


def test_robustperf_fit_and_a_study_fit_reach_it(runs, tmp_path):
    frame, path = runs
    out = tmp_path / "fit.json"
    res = CliRunner().invoke(app, ["fit", str(path), "--law", NAME, "--n", "params", "--d", "samples",
                                   "--loss", "adv_loss", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "status: ok" in res.output and out.exists()
    study_fit = _fit_surface(NAME, frame.params.to_numpy(), frame.samples.to_numpy(), frame.adv_loss.to_numpy(), 0, 0)
    assert study_fit.law == NAME and study_fit.params == pytest.approx(TRUTH, rel=1e-6)
