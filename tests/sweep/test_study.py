"""Study files: grid expansion, validation that names the bad key, seeds, explicit runs, the quickstart study."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustperf.sweep import StudyError, expand, grid_points, load_study, study_from_dict

ROOT = Path(__file__).resolve().parents[2]


def test_grid_is_a_cartesian_product_times_seeds() -> None:
    study = study_from_dict({"name": "g", "grid": {"model.kwargs.width": [4, 8, 16], "data.n_train": [100, 200]},
                             "seeds": [0, 1]})
    configs = expand(study)
    assert len(configs) == 12 and len({c.run_id for c in configs}) == 12
    assert {(c.model.kwargs["width"], c.data.n_train, c.runtime.seed) for c in configs} == {
        (w, n, s) for w in (4, 8, 16) for n in (100, 200) for s in (0, 1)}
    assert all(c.run_id.startswith("g-") for c in configs)


def test_explicit_runs_are_crossed_with_the_grid_and_duplicates_dropped() -> None:
    study = study_from_dict({"name": "r", "runs": [{"method.name": "pgd_at"}, {"method.name": "trades"},
                                                   {"method.name": "pgd_at"}],
                             "grid": {"method.attack.n_steps": [1, 3]}})
    assert len(grid_points(study)) == 6
    configs = expand(study)
    assert [(c.method.name, c.method.attack.n_steps) for c in configs] == [
        ("pgd_at", 1), ("pgd_at", 3), ("trades", 1), ("trades", 3)]


def test_an_explicit_run_s_own_seeds_replace_the_study_s() -> None:
    """Extra seeds where the noise is (e.g. one data set of a quality study), without re-running the rest."""
    study = study_from_dict({"name": "s", "seeds": [0, 1], "runs": [{"data.n_train": 100},
                                                                     {"data.n_train": 200, "seeds": [2, 3, 4]}]})
    configs = expand(study)
    assert [(c.data.n_train, c.runtime.seed) for c in configs] == [(100, 0), (100, 1), (200, 2), (200, 3), (200, 4)]
    plain = expand(study_from_dict({"name": "s", "seeds": [0, 1], "runs": [{"data.n_train": 100}]}))
    assert [c.run_id for c in plain] == [c.run_id for c in configs[:2]]  # the key itself never reaches the config
    with pytest.raises(StudyError, match=r"runs\[0\] sets runtime.seed.*seeds: \[7\]"):
        study_from_dict({"name": "s", "runs": [{"runtime.seed": 7}]})
    for bad in ([], [1.5], "0", [True]):
        with pytest.raises(StudyError, match=r"runs\[0\] seeds=.*non-empty list of integers"):
            study_from_dict({"name": "s", "runs": [{"seeds": bad}]})


def test_a_misspelled_grid_key_names_the_point_and_the_key() -> None:
    study = study_from_dict({"name": "bad", "grid": {"optim.lrr": [0.1]}})
    with pytest.raises(StudyError, match=r"(?s)grid point 0 .*unknown key 'optim.lrr'"):
        expand(study)


def test_study_level_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="unknown key 'gird'"):
        study_from_dict({"name": "x", "gird": {}})
    with pytest.raises(StudyError, match="has no values"):
        study_from_dict({"name": "x", "grid": {"data.n_train": []}})
    with pytest.raises(StudyError, match="does not exist"):
        study_from_dict({"name": "x", "base": "missing.yaml"}, source_dir=tmp_path)
    with pytest.raises(StudyError, match=r"fractions in \(0, 1\)"):
        study_from_dict({"name": "x", "forecast": {"robust_acc_targets": [60]}})
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "nope.yaml")


def test_base_path_is_relative_to_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("model: {name: tiny_mlp}\noptim: {epochs: 3}\n")
    (tmp_path / "s.yaml").write_text("name: rel\nbase: base.yaml\ngrid: {optim.lr: [0.1, 0.01]}\n")
    configs = expand(load_study(tmp_path / "s.yaml"))
    assert [c.optim.lr for c in configs] == [0.1, 0.01]
    assert all(c.model.name == "tiny_mlp" and c.optim.epochs == 3 for c in configs)


def test_quickstart_study_is_valid_and_big_enough() -> None:
    study = load_study(ROOT / "configs" / "quickstart_study.yaml")
    configs = expand(study)
    assert len({c.model.kwargs.get("width") for c in configs}) >= 3  # >= 3 model sizes
    assert len({(c.data.n_train, c.optim.epochs) for c in configs}) >= 3  # x >= 3 data budgets (samples seen)
    # TRADES: the L(N, D) law is fitted on the TRADES objective (issue 11: under PGD-AT it was not identified)
    assert {c.method.name for c in configs} == {"trades"} and {c.data.dataset for c in configs} == {"digits"}
    assert study.fit.surface != "none" and study.forecast.robust_acc_targets and study.forecast.flops_budgets
    from robustperf.sweep.design import check_design

    assert check_design(study).ok  # the grid can identify both exponents (a decade-wide D is only a warning)
