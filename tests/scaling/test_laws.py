"""Published laws reproduce the paper's anchors (REFERENCE.md s.4); the registry and torch-free import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robustperf.registry import RegistryError
from robustperf.scaling import (
    LAWS,
    Approach2Law,
    compute_optimal,
    create_law,
    forecast_accuracy,
    forecast_loss,
)

K = 7822.0  # FLOPs = 7822 N D (papers/001)


@pytest.fixture(scope="module")
def a2():
    return create_law("bartoldson2024_approach2")


# Anchors are printed to 5 decimals; 2e-5 allows the last-digit rounding of the printed notebook values.
@pytest.mark.parametrize(("fid", "expected"), [(6.7908, 0.75315), (1.65, 0.82858), (0.0, 0.88633)])
def test_approach2_accuracy_at_1e30(a2, fid, expected):
    assert forecast_accuracy(a2, 1e30, fid=fid, k=K) == pytest.approx(expected, abs=2e-5)


def test_approach2_ceiling(a2):
    acc = create_law("bartoldson2024_loss_to_accuracy")
    assert float(acc(a2.terms(0.0)[2])) == pytest.approx(0.89652, abs=1e-5)


def test_approach2_allocation_at_1e21_fid165(a2):
    alloc = compute_optimal(a2, 1e21, fid=1.65, k=K)
    # Printed to 3 significant figures: 1.63e8 and 7.86e8.
    assert pytest.approx(1.63e8, rel=5e-3) == alloc.N
    assert pytest.approx(7.86e8, rel=5e-3) == alloc.D
    assert float(create_law("bartoldson2024_loss_to_accuracy")(alloc.loss)) == pytest.approx(0.735, abs=5e-4)
    assert pytest.approx(1e21, rel=1e-12) == K * alloc.N * alloc.D


def test_approach2_table3_at_fid0(a2):
    alloc = compute_optimal(a2, 1e25, fid=0.0, k=K)
    assert round(alloc.loss, 2) == 0.53
    assert round(alloc.a, 2) == 0.48 and round(alloc.b, 2) == 0.52
    assert forecast_loss(a2, 1e25, fid=0.0, k=K) == alloc.loss


def test_both_conventions_are_the_same_law():
    fid0 = create_law("bartoldson2024_approach2")
    fid165 = create_law("bartoldson2024_approach2_fid1.65")
    n, d = np.array([1e7, 3e8]), np.array([5e7, 2e9])
    for fid in (0.0, 1.65, 6.79, 40.0):
        np.testing.assert_allclose(fid0(n, d, fid), fid165(n, d, fid), rtol=1e-12)
    # The paper prints B = 9.89, E = 0.48 at FID 0 (rounded).
    assert pytest.approx(9.89, abs=5e-3) == fid0.B and pytest.approx(0.48, abs=5e-3) == fid0.E
    assert fid0.fid_ref == 0.0 and fid165.fid_ref == 1.65
    back = fid0.at_reference(1.65)
    assert pytest.approx(7.551689, rel=1e-9) == back.B and pytest.approx(0.560373, rel=1e-9) == back.E


def test_approach3_anchor():
    law = create_law("bartoldson2024_approach3")
    assert float(law(1e8, 1e8, 1.65)) == pytest.approx(0.74586, abs=1e-5)
    rounded = create_law("bartoldson2024_approach3_rounded")
    assert float(rounded(1e8, 1e8, 1.65)) == pytest.approx(0.7549, abs=1e-4)
    assert law.B_approach2 == pytest.approx(6.85, abs=5e-3)  # App. F.3.1: "B^beta = 6.85" (unrounded beta)
    assert float(law.E_at(1.65)) == pytest.approx(law.E + np.log(2.65) * law.eps)


def test_approach3_at_fid0_is_chinchilla_with_b_to_the_beta():
    law = create_law("bartoldson2024_approach3")
    chin = create_law("chinchilla", A=law.A, B=law.B**law.beta, E=law.E, alpha=law.alpha, beta=law.beta)
    assert float(law(2e7, 3e8, 0.0)) == pytest.approx(float(chin(2e7, 3e8)), rel=1e-12)


def test_debenedetti_power_laws_and_sources():
    acc = create_law("debenedetti2023_powerlaw")
    assert (acc.C, acc.alpha) == (50.86, 0.01)
    cost = create_law("debenedetti2023_cost_powerlaw")
    assert (cost.C, cost.alpha) == (7.0e-6, 0.95)
    assert float(acc.inverse(acc(1e6))) == pytest.approx(1e6, rel=1e-9)
    for name in LAWS.names("bartoldson*") + LAWS.names("debenedetti*"):
        assert create_law(name).source, name


def test_loss_to_accuracy_map():
    m = create_law("bartoldson2024_loss_to_accuracy")
    assert (m.slope, m.intercept) == (-0.7496, 1.2575)
    assert float(m.inverse(m(0.6))) == pytest.approx(0.6)


def test_create_law_errors_name_the_fix():
    with pytest.raises(RegistryError, match="Did you mean 'approach2'"):
        create_law("approach_2")
    with pytest.raises(TypeError, match="no parameter"):
        create_law("power_law", C=1.0, alpha=0.5, gamma=2.0)
    law = create_law("approach2", A=1.0, B=1.0, E=0.1, alpha=0.3, beta=0.3)
    assert isinstance(law, Approach2Law) and law.params["eps"] == 0.0
    with pytest.raises(ValueError, match="FID"):
        law(1e6, 1e6, -1.0)


def test_laws_are_frozen():
    law = create_law("bartoldson2024_approach2")
    with pytest.raises(AttributeError):
        law.A = 1.0  # type: ignore[misc]


def test_scaling_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import robustperf.scaling as s\n"
        "import robustperf.cli.fit\n"
        "law = s.create_law('bartoldson2024_approach2')\n"
        "print(round(s.forecast_accuracy(law, 1e30, fid=1.65), 5))\n"
        "assert 'torch' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.82857" or out.stdout.strip() == "0.82858"


def test_fit_result_field_order_matches_the_contract():
    from dataclasses import fields

    from robustperf.scaling import FitResult

    names = [f.name for f in fields(FitResult)]
    assert names[:6] == ["params", "status", "objective", "n_points", "residuals", "bootstrap"]
    with pytest.raises(AttributeError):
        FitResult({}, "ok", 0.0, 0).status = "failed"  # frozen
