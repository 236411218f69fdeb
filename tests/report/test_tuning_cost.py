"""Tuning runs: the study expands them, the report picks the selected run and adds the tuning runs' cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustperf.report.tuning import tuning_groups, tuning_table
from robustperf.store import RunDir, RunRecord
from robustperf.sweep import study_from_dict
from robustperf.sweep.study import StudyError, expand

BASE = {"name": "tune", "model": {"name": "tiny_cnn"}, "optim": {"epochs": 1}}


def _study(**extra: object) -> object:
    return study_from_dict({"name": "tune", "base": BASE, "grid": {"model.kwargs.width": [4, 8]}, "seeds": [0],
                            "tuning": {"grid": {"optim.lr": [0.05, 0.1, 0.2]}, "select_on": "robust_acc"},
                            "fit": {"envelope": False, "surface": "none", "bootstrap": 0}, **extra})


def test_tuning_grid_multiplies_the_runs() -> None:
    configs = expand(_study())
    assert len(configs) == 2 * 3
    assert sorted({c.optim.lr for c in configs}) == [0.05, 0.1, 0.2]
    with pytest.raises(StudyError, match="needs >= 2 values"):
        study_from_dict({"name": "x", "base": BASE, "tuning": {"grid": {"optim.lr": [0.1]}}})


def _write_runs(runs_dir: Path) -> dict[tuple[int, float], str]:
    """Robust accuracy peaks at lr 0.1 for width 4 and at lr 0.2 for width 8; cost grows with the lr index."""
    best = {4: 0.1, 8: 0.2}
    ids = {}
    for cfg in expand(_study()):
        w, lr = int(cfg.model.kwargs["width"]), cfg.optim.lr
        robust = 0.5 - abs(lr - best[w])
        seconds = 10.0 * w + 100 * lr
        rd = RunDir.for_run(runs_dir, cfg.run_id)
        rd.write_config(cfg.resolved())
        rd.write_record(RunRecord(run_id=cfg.run_id, status="finished",
                                  final={"robust_acc": robust, "clean_acc": 0.9, "adv_loss": 1.0, "n_params": 100.0 * w,
                                         "samples_seen": 1000.0, "epoch": 1},
                                  cost={"train_flops": 1e9 * w, "seconds": seconds, "energy_kwh": seconds * 1e-5,
                                        "co2_kg": seconds * 5e-6, "usd": seconds * 1e-6}))
        ids[(w, lr)] = cfg.run_id
    return ids


def test_groups_select_the_best_and_sum_the_cost(tmp_path: Path) -> None:
    from robustperf.store import load_index

    ids = _write_runs(tmp_path)
    groups = tuning_groups(load_index(tmp_path), ["optim.lr"], "robust_acc")
    assert len(groups) == 2
    by_sel = {g.selected: g for g in groups}
    g4, g8 = by_sel[ids[(4, 0.1)]], by_sel[ids[(8, 0.2)]]
    assert g4.chosen == {"optim.lr": 0.1} and g8.chosen == {"optim.lr": 0.2}
    assert set(g4.tuning_ids) == {ids[(4, 0.05)], ids[(4, 0.2)]}
    assert g4.selected_cost["cost.seconds"] == pytest.approx(40 + 10)
    assert g4.total_cost["cost.seconds"] == pytest.approx(3 * 40 + 5 + 10 + 20)
    assert g8.total_cost["cost.usd"] == pytest.approx((3 * 80 + 35) * 1e-6)
    table = tuning_table(groups, "robust_acc")
    assert "x cost of tuning" in table and f"{(3 * 40 + 35) / 50:.3g}" in table


def test_report_shows_tuning_cost_and_fits_selected_runs(tmp_path: Path) -> None:
    from robustperf.report import build_report

    ids = _write_runs(tmp_path / "runs")
    study = _study(runs_dir=str(tmp_path / "runs"))
    page = build_report(study, tmp_path / "report").read_text()
    assert "Hyperparameter tuning cost" in page and "optim.lr=0.1" in page and "optim.lr=0.2" in page
    board = page[page.index("<h2>Leaderboard</h2>"):]
    selected, tuning = {ids[(4, 0.1)], ids[(8, 0.2)]}, set(ids.values()) - {ids[(4, 0.1)], ids[(8, 0.2)]}
    assert all(r in board for r in selected)  # the leaderboard (and the fits) hold the selected runs
    assert not any(r in board for r in tuning)  # the tuning runs appear only in the tuning-cost table
