"""The analytic model: forward equivalents per method, f_arch and C = k f N D (no torch needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from robustperf.cost import analytic


@pytest.mark.parametrize(
    ("method", "k", "awp", "expected"),
    [
        ("standard", 0, False, 3.0),
        ("pgd_at", 10, False, 23.0),
        ("trades", 10, False, 27.0),
        ("trades_original", 10, False, 39.0),
        ("mart", 10, False, 26.0),
        ("fast_at", 1, False, 5.0),
        ("fast_at", 10, False, 5.0),
        ("fgsm_noproj", 1, False, 5.0),
        ("free_at", 10, False, 24.0),  # m = 8 replays of 3F, whatever n_steps
        ("pgd_at", 10, True, 26.0),
        ("trades", 10, True, 33.0),
    ],
)
def test_forward_equivalents(method: str, k: int, awp: bool, expected: float) -> None:
    assert analytic.forward_equivalents(method, k, awp=awp) == expected


def test_unknown_method_lists_known_ones() -> None:
    with pytest.raises(analytic.UnknownMethodError, match="trades"):
        analytic.forward_equivalents("tradez", 10)


def test_bartoldson_constant_is_27_f_arch() -> None:
    # 7822 N D = 27 x f_arch for WideResNets (REFERENCE.md s.3): f_arch = 289.7.
    f = analytic.BARTOLDSON_FLOPS_PER_PARAM_SAMPLE.value / analytic.forward_equivalents("trades", 10)
    assert f == pytest.approx(analytic.F_ARCH["wide_resnet"].value, rel=0.02)
    c = analytic.training_flops(27.0, f, 36.5e6, 1e6)
    assert c == pytest.approx(7822 * 36.5e6 * 1e6)
    assert analytic.samples_for_budget(c, 27.0, f, 36.5e6) == pytest.approx(1e6)


def test_eval_equivalents() -> None:
    assert analytic.pgd_eval_equivalents(40) == 82.0
    assert analytic.eval_flops_from_counts(10.0, n_forward_images=3, n_gradient_images=2) == 70.0
    assert analytic.autoattack_equivalents_upper(1.0) == 1.0 + 2 * 1900 + 5900


def test_importable_without_torch() -> None:
    # scaling/forecast users may not have torch: constants, conversions, analytic, meters and run_cost work.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import robustperf.cost, robustperf.cost.analytic, robustperf.cost.conversions, robustperf.cost.constants\n"
        "from robustperf.config import CostConfig\n"
        "from robustperf.cost.accounting import run_cost\n"
        "from robustperf.cost.energy import create_meter\n"
        "m = create_meter('fake'); m.start(); r = m.stop()\n"
        "run_cost(CostConfig(), seconds=r.seconds, samples_seen=1, flops_per_sample=1.0, joules=r.joules,"
        " energy_source=r.source)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
