"""The summary's forecast carries its caveat in the same sentence (issue 27)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from robustperf.report.analysis import analyze
from robustperf.report.summary import plain_summary
from robustperf.store import load_index
from robustperf.sweep.study import FitSpec, ForecastSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planted_runs  # noqa: E402


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    planted_runs.write_planted_runs(runs_dir, failed=0)
    return load_index(runs_dir)


def _sentence(text: str, start: str) -> str:
    """The sentence starting with ``start`` (numbers such as 1e+20 contain no sentence break)."""
    return re.split(r"(?<=\.) (?=[A-Z])", text[text.index(start):])[0]


def test_an_extrapolated_budget_forecast_is_labelled_in_its_own_sentence(rows) -> None:
    analysis = analyze(rows, fit=FitSpec(bootstrap=0), forecast=ForecastSpec(flops_budgets=(1e20,)))
    text = plain_summary(analysis, ForecastSpec(flops_budgets=(1e20,)), markup=False)
    sentence = _sentence(text, "At the named budget")
    assert "forecast to reach" in sentence and "extrapolation" in sentence


def test_the_summary_opens_with_what_was_measured_then_the_fit_then_the_backtest(rows) -> None:
    analysis = analyze(rows, fit=FitSpec(bootstrap=0), forecast=ForecastSpec(flops_budgets=(1e13,)))
    text = plain_summary(analysis, ForecastSpec(flops_budgets=(1e13,)), markup=False)
    order = [text.index(s) for s in ("runs were measured", "The best reached", "Adversarial loss falls",
                                     "the whole pipeline predicts", "At the named budget")]
    assert order == sorted(order)
