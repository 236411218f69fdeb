"""Whole-pipeline backtest in accuracy units (issue 27): a straight-line map on saturating data is caught."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from robustperf.scaling import fit_chinchilla
from robustperf.scaling.accuracy_map import expit, fit_logit_loss_to_accuracy
from robustperf.scaling.backtest import backtest_pipeline, conformal_halfwidth, widen
from robustperf.scaling.laws import ChinchillaLaw

K = 6.0
TRUTH = ChinchillaLaw(A=30.0, alpha=0.45, B=60.0, beta=0.5, E=0.55)


def planted(seed: int, noise: float = 0.005) -> dict[str, np.ndarray]:
    """5 model sizes x 4 data sizes; accuracy saturates in the loss: logit(acc) = 6 - 5 loss.

    Accuracies span 0.30-0.90, like the quickstart's: a line fitted on the smaller runs leans high above.
    """
    rng = np.random.default_rng(seed)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e4, 1e5, 5), np.geomspace(3e4, 1e6, 4)))
    loss = TRUTH(N, D) * np.exp(rng.normal(0.0, noise, N.size))
    acc = np.clip(expit(6.0 - 5.0 * loss) + rng.normal(0.0, noise, N.size), 0.0, 1.0)
    return {"run_id": np.array([f"r{i}" for i in range(N.size)]), "flops": K * N * D, "N": N, "D": D,
            "loss": loss, "accuracy": acc}


def surface(N: np.ndarray, D: np.ndarray, L: np.ndarray):  # noqa: N803
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_chinchilla(N, D, L, bootstrap=0)


def test_planted_data_saturate_beyond_the_training_losses() -> None:
    data = planted(0)
    top = data["flops"] >= np.sort(data["flops"])[-4]
    assert data["loss"][top].min() < data["loss"][~top].min()  # the held-out runs reach losses never fitted
    assert data["accuracy"].max() < 1.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_straight_line_map_over_predicts_and_is_caught(seed: int) -> None:
    bt = backtest_pipeline(**planted(seed), fit_surface=surface, k=K, map_form="linear")
    assert bt.mean_error > 0  # the line keeps rising where the accuracies flatten: optimism
    assert not bt.passed
    assert bt.reasons


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bounded_map_passes_on_the_same_data(seed: int) -> None:
    bt = backtest_pipeline(**planted(seed), fit_surface=surface, k=K, map_form="logit")
    assert bt.passed, bt.reasons
    assert bt.mean_abs_error < 0.03
    assert len(bt.signs.split()) == len([r for r in bt.rows if r["kind"] == "run"])


def test_percent_accuracies_are_refused() -> None:
    data = planted(0)
    data["accuracy"] = 100 * data["accuracy"]
    with pytest.raises(ValueError, match="divide them by 100"):
        backtest_pipeline(**data, fit_surface=surface, k=K)
    with pytest.raises(ValueError, match="divide them by 100"):
        fit_logit_loss_to_accuracy(data["loss"], data["accuracy"])


def test_conformal_widening_covers_the_calibration_errors() -> None:
    q, level = conformal_halfwidth(np.array([0.1, 0.4, 0.2, 0.3]))
    assert q == pytest.approx(0.4) and level == pytest.approx(0.8)  # 4 points cannot give 95 %: max, 4/5
    q, level = conformal_halfwidth(np.linspace(0.01, 1.0, 100))
    assert level == 0.95 and q == pytest.approx(0.96)
    value, lo, hi = widen((0.9, 0.88, 0.92), 0.5)
    assert lo < 0.88 and 0.92 < hi < 1.0 and value == 0.9


def test_logit_map_is_bounded_and_monotone() -> None:
    loss = np.linspace(0.5, 2.5, 30)
    acc = expit(4.0 - 3.0 * loss)
    fit = fit_logit_loss_to_accuracy(loss, acc, bootstrap=20)
    m = fit.to_law()
    assert fit.params["slope"] == pytest.approx(-3.0, rel=1e-3)
    far = m(np.array([-5.0, 0.0, 10.0]))  # far outside the fitted losses: still in (0, 1)
    assert np.all((far > 0) & (far < 1)) and np.all(np.diff(far) < 0)
    assert m.inverse(m(1.3)) == pytest.approx(1.3)
    assert len(fit.bootstrap_laws()) == 20
