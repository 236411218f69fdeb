"""One robust accuracy per run (issue 27): the same number in runs list, runs show, the report and the fits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.report.analysis import analyze
from robustperf.report.summary import plain_summary
from robustperf.report.tables import fmt, leaderboard_table
from robustperf.store import RunDir, load_index, rebuild_index
from robustperf.sweep.study import FitSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planted_runs  # noqa: E402

KEY = "study_best_apgd-ce+apgd-t_100"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Planted runs whose last-epoch PGD number differs from their stronger post-training evaluation."""
    runs_dir = tmp_path_factory.mktemp("runs")
    ids = planted_runs.write_planted_runs(runs_dir, widths=(4, 8, 16), n_trains=(300, 600, 1200), failed=0)
    expected = {}
    for run_id in ids:
        rd = RunDir.for_run(runs_dir, run_id)
        pgd = rd.read_record().final["robust_acc"]
        strong = round(pgd - 0.03, 6)  # APGD-T finds 3 points the training's PGD missed
        rd.update_record(evaluations={KEY: {
            "attack": "apgd-ce+apgd-t", "attacks": ["apgd-ce", "apgd-t"], "checkpoint": "best", "eps": 0.1,
            "norm": "linf", "n_examples": 100, "clean_acc": 0.97, "robust_acc": strong,
            "per_attack": {"apgd-ce": {"robust_acc": strong + 0.02}, "apgd-t": {"robust_acc": strong}}}})
        expected[run_id] = strong
    rebuild_index(runs_dir)
    return runs_dir, expected


def test_runs_list_show_report_and_fits_agree(runs) -> None:
    runs_dir, expected = runs
    runner = CliRunner()
    listing = runner.invoke(app, ["runs", "list", "--runs-dir", str(runs_dir)])
    assert listing.exit_code == 0, listing.output
    analysis = analyze(load_index(runs_dir), fit=FitSpec(bootstrap=0))
    frame = analysis.frame.set_index("run_id")
    board = leaderboard_table(analysis.frame)
    index = {r["run_id"]: r for r in load_index(runs_dir)}  # exports and `robustperf fit` read this column
    for run_id, value in expected.items():
        line = next(ln for ln in listing.output.splitlines() if run_id in ln)
        assert f"{value:.4g}" in line and "apgd-ce+apgd-t @best eps 0.1" in line  # runs list
        shown = json.loads(runner.invoke(app, ["runs", "show", run_id, "--runs-dir", str(runs_dir)]).output)
        assert shown["robust_accuracy"]["value"] == pytest.approx(value)  # runs show
        assert shown["robust_accuracy"]["eps"] == 0.1 and shown["robust_accuracy"]["checkpoint"] == "best"
        assert frame.loc[run_id, "robust_acc"] == pytest.approx(value)  # the report's frame, which the fits read
        assert frame.loc[run_id, "clean_acc"] == pytest.approx(0.97)  # clean from the same evaluation
        assert fmt(value) in board  # leaderboard
        assert index[run_id]["robust.acc"] == pytest.approx(value) and "apgd-t" in index[run_id]["robust.from"]
    lo, hi = analysis.loss_to_accuracy.metrics["y_range"]  # the fitted map saw exactly these accuracies
    assert lo == pytest.approx(min(expected.values())) and hi == pytest.approx(max(expected.values()))
    assert "robust accuracy: apgd-ce + apgd-t, best checkpoint, linf eps 0.1" in plain_summary(analysis, markup=False)


def test_a_weaker_attack_beaten_by_a_stronger_one_is_flagged(runs) -> None:
    runs_dir, expected = runs
    analysis = analyze(load_index(runs_dir), fit=FitSpec(bootstrap=0))
    beaten = [f for _, f in analysis.flags if f.startswith("weaker attack beaten")]
    assert len(beaten) == len(expected)
    assert "apgd-ce alone overstated robust accuracy by 2.0 points (beaten by apgd-t)" in beaten[0]


def test_without_an_evaluation_the_training_threat_model_is_named() -> None:
    """The last-epoch fallback is labelled with the eps it was measured at: the training attack's (method.attack),
    which the training evaluation uses when eval.attack.eps holds its old default 8/255 (`robustperf.threat`)."""
    from robustperf.store.robust import robust_accuracy

    row = {"final.robust_acc": 0.5, "final.clean_acc": 0.8, "config.method.attack.eps": 0.1,
           "config.method.attack.norm": "linf", "config.eval.attack.eps": 8 / 255, "config.eval.attack.norm": "linf",
           "config.eval.attack.n_steps": 40, "config.eval.attack.loss": "cw", "config.eval.n_examples": 64}
    r = robust_accuracy(row)
    assert (r.value, r.checkpoint, r.eps, r.norm) == (0.5, "last epoch", 0.1, "linf")
    assert "eps 0.1" in r.label() and "0.0314" not in r.label()
