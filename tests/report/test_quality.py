"""The data-quality analysis: measured FIDs from meta.json, Approach 2/3 with FID terms, the FID-0 ceiling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robustperf.report.quality import accuracy_vs_flops, analyze_quality, quality_frame, results_markdown
from robustperf.scaling import create_law

EXTRACTOR = "digits-cnn-v1-0123abcd"


def _level(tmp_path: Path, name: str, fid: float | None, extractor: str | None = EXTRACTOR) -> str:
    d = tmp_path / name
    d.mkdir()
    meta = {} if fid is None else {"fid": fid, "fid_extractor": extractor}
    (d / "meta.json").write_text(json.dumps(meta))
    return str(d)


def _rows(tmp_path: Path, fids=(1.65, 5.0, 15.0), noise: float = 0.003) -> list[dict]:
    """Runs whose adversarial loss follows the published Approach 2 law (papers/001) at their set's FID."""
    law = create_law("bartoldson2024_approach2")
    rng = np.random.default_rng(0)
    rows = []
    for i, fid in enumerate(fids):
        path = _level(tmp_path, f"q{i}", fid)
        for n in (3e6, 1e7, 3e7, 1e8, 3e8):
            for d in (3e6, 1e7, 3e7, 1e8, 3e8):
                loss = float(law(n, d, fid)) * float(np.exp(rng.normal(0, noise)))
                rows.append({"run_id": f"r{len(rows)}", "status": "finished", "final.n_params": n,
                             "final.samples_seen": d, "final.adv_loss": loss, "cost.train_flops": 7822 * n * d,
                             "final.robust_acc": -0.7496 * loss + 1.2575, "config.data.synthetic_path": path,
                             "config.data.synthetic_fraction": 0.875})
    return rows


def test_fits_recover_the_quality_terms_and_the_ceiling_orders_by_fid(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    rows.append({"run_id": "x", "status": "failed"})  # ignored
    analysis = analyze_quality(rows, bootstrap=30)
    assert analysis.extractor == EXTRACTOR and len(analysis.frame) == 75
    a2 = analysis.approach2
    assert a2.params["eps"] == pytest.approx(0.16, abs=0.03) and a2.params["zeta"] == pytest.approx(-0.28, abs=0.06)
    assert a2.params["alpha"] == pytest.approx(0.24, abs=0.05)
    assert analysis.approach3.params  # fitted (its status is whatever the fit reports)
    ceilings = {c["fid"]: c for c in analysis.ceilings if c["law"] == "approach2"}
    assert set(ceilings) == {0.0, 1.65, 5.0, 15.0}
    acc = [ceilings[f]["accuracy"]["value"] for f in (0.0, 1.65, 5.0, 15.0)]
    assert acc == sorted(acc, reverse=True)  # worse data, lower ceiling
    # the planted law's FID-0 ceiling (REFERENCE.md: 0.89652 with the paper's loss->accuracy line)
    assert acc[0] == pytest.approx(0.8965, abs=0.02)
    assert not any("outside [0, 1]" in n for n in analysis.notes)  # a sound fit raises no impossible-ceiling note
    c0 = ceilings[0.0]["accuracy"]
    assert c0["low"] <= c0["value"] <= c0["high"]
    text = results_markdown(analysis, title="t", header_lines=["h"])
    assert "## approach2: status" in text and "| eps |" in text and "| approach2 |" in text
    fig = accuracy_vs_flops(analysis, human_accuracy=0.9)
    assert any("FID-0 ceiling" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_robust_error_metric_maps_the_ceiling_to_one_minus_error(tmp_path: Path) -> None:
    rows = _rows(tmp_path, fids=(2.0, 8.0))
    for r in rows:  # a robust error that follows the law's shape, scaled into (0, 1)
        r["final.robust_acc"] = 1.0 - 0.5 * r["final.adv_loss"]
    analysis = analyze_quality(rows, bootstrap=0, metric="robust_error")
    assert analysis.metric == "robust_error" and analysis.loss_to_accuracy is None
    for c in analysis.ceilings:
        assert c["accuracy"]["value"] == pytest.approx(1.0 - c["loss"]["value"])
    a2 = {c["fid"]: c["accuracy"]["value"] for c in analysis.ceilings if c["law"] == "approach2"}
    assert a2[0.0] > a2[2.0] > a2[8.0]
    with pytest.raises(ValueError, match="metric"):
        analyze_quality(rows, metric="accuracy")


def test_fid_comes_from_the_measured_meta_and_real_only_runs_are_fid_zero(tmp_path: Path) -> None:
    rows = [
        {"run_id": "a", "status": "finished", "config.data.synthetic_path": _level(tmp_path, "m", 7.5),
         "config.data.synthetic_fraction": 0.5, "config.data.synthetic_fid": 99.0},
        {"run_id": "b", "status": "finished"},
        {"run_id": "c", "status": "finished", "config.data.synthetic_path": _level(tmp_path, "t", None),
         "config.data.synthetic_fraction": 0.5, "config.data.synthetic_fid": 3.0},
    ]
    frame, notes = quality_frame(rows)
    assert frame["fid"].tolist() == [7.5, 0.0, 3.0]  # the measured value wins over a typed tag
    assert any("typed tag" in n for n in notes)
    rows[2].pop("config.data.synthetic_fid")
    with pytest.raises(ValueError, match="data fid"):
        quality_frame(rows)


def test_fids_from_two_extractors_are_refused(tmp_path: Path) -> None:
    rows = _rows(tmp_path, fids=(2.0,))
    rows[0]["config.data.synthetic_path"] = _level(tmp_path, "other", 2.0, extractor="inception-v3-pool3")
    with pytest.raises(ValueError, match="different extractors"):
        analyze_quality(rows, bootstrap=0)


@pytest.mark.slow
def test_cli_quality_study_runs_fits_and_writes_results(tmp_path: Path, monkeypatch) -> None:
    """End to end on real (tiny) runs: a measured synthetic set, 2 widths x 2 sizes, the fits, the files.

    Slow: four runs, each in a fresh spawned process (over 10 minutes on the loaded shared 2-core VM)."""
    import yaml
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    runner = CliRunner()
    monkeypatch.setenv("ROBUSTPERF_CACHE", str(tmp_path / "cache"))
    syn = tmp_path / "syn"
    made = runner.invoke(app, ["data", "make-synthetic", "digits", "--out", str(syn), "--set", "data.n_train=300"])
    assert made.exit_code == 0, made.output
    measured = runner.invoke(app, ["data", "fid", str(syn), "--ref", "digits", "--write-meta"])
    assert measured.exit_code == 0, measured.output
    study = {
        "name": "tinyq", "runs_dir": str(tmp_path / "runs"),
        "base": {"name": "tinyq", "data": {"dataset": "digits", "batch_size": 32, "synthetic_path": str(syn),
                                           "synthetic_fraction": 0.5},
                 "model": {"name": "tiny_cnn", "kwargs": {"width": 4}},
                 "method": {"name": "pgd_at", "attack": {"eps": 0.1, "step_size": 0.1, "n_steps": 1}},
                 "optim": {"epochs": 1, "lr": 0.05}, "eval": {"n_examples": 50}, "runtime": {"device": "cpu"}},
        "grid": {"model.kwargs.width": [4, 8], "data.n_train": [32, 64]},
        "fit": {"surface": "none"}, "executor": {"name": "local", "workers": 2, "gpus_per_run": 0},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out_md = tmp_path / "results.md"
    result = runner.invoke(app, ["data", "quality-study", str(path), "--bootstrap", "5", "--results", str(out_md)],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    report = tmp_path / "runs" / "reports" / "tinyq"
    payload = json.loads((report / "quality.json").read_text())
    assert len(payload["runs"]) == 4 and payload["extractor"].startswith("digits-cnn-v1-")
    fid = json.loads((syn / "meta.json").read_text())["fid"]
    assert all(r["fid"] == pytest.approx(fid) for r in payload["runs"])
    assert (report / "quality_accuracy_vs_flops.png").stat().st_size > 0
    text = out_md.read_text()
    # 4 runs of one FID: too few for either law, and the file says so instead of printing parameters
    assert "4 runs" in text and "too_few_points" in text


def test_report_figure_only_for_quality_studies_and_ceilings_only_from_sound_fits(tmp_path: Path) -> None:
    from robustperf.report.plots import empty_reason
    from robustperf.report.quality import ceiling_law, ceiling_withheld, report_figure

    rows = _rows(tmp_path, noise=0.003)
    plain = [{k: v for k, v in r.items() if not k.startswith("config.data.synthetic")} for r in rows]
    assert report_figure(plain, evaluation_key=None, metrics=("adv_loss",), bootstrap=0) is None
    caption, fig = report_figure(rows, evaluation_key=None, metrics=("robust_acc", "adv_loss"), bootstrap=0)
    assert "measured FID" in caption and "adv_loss" in caption and empty_reason(fig) is None
    # a fit that is not ok never draws a ceiling, and says why
    analysis = analyze_quality(rows[:30], bootstrap=0)  # two levels only: stage 2 rests on 5 runs
    broken = analysis.approach2.__class__(**{**analysis.approach2.__dict__, "status": "poorly_identified"})
    from dataclasses import replace

    # the paper's two stages not ok, the joint fit ok: the joint fit's ceilings are drawn, and named
    assert analysis.approach2_joint.ok
    joint_only = replace(analysis, approach2=broken)
    assert ceiling_law(joint_only) == "approach2_joint" and ceiling_withheld(joint_only) is None
    labels = [t.get_text() for t in accuracy_vs_flops(joint_only).axes[0].get_legend().get_texts()]
    joint_zero = next(c for c in analysis.ceilings if c["law"] == "approach2_joint" and c["fid"] == 0.0)
    assert f"FID-0 ceiling (Approach 2, joint fit) {joint_zero['accuracy']['value']:.3f}" in labels
    # neither sound: nothing drawn, and the legend says why for both
    withheld = replace(joint_only, approach2_joint=replace(analysis.approach2_joint, status="not_converged"))
    assert ceiling_law(withheld) is None
    assert ceiling_withheld(withheld) == "Approach 2 is poorly_identified; Approach 2, joint fit is not_converged"
    labels = [t.get_text() for t in accuracy_vs_flops(withheld).axes[0].get_legend().get_texts()]
    assert any(label.startswith("ceilings not drawn") for label in labels)
    assert not any("FID-0 ceiling" in label for label in labels)


def test_cli_quality_study_refuses_an_unknown_metric_before_any_run(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "q", "runs_dir": str(tmp_path / "runs"),
                                     "base": {"data": {"dataset": "digits"}}, "grid": {}}))
    res = CliRunner().invoke(app, ["data", "quality-study", str(study), "--metric", "adv_los"])
    assert res.exit_code == 2 and "adv_ce" in res.output
    assert not (tmp_path / "runs").exists()  # nothing ran


def _human_study(tmp_path: Path, answers: bool = True) -> Path:
    """A labelling study of 12 fooled images (40 evaluated, 25 robust-correct); optionally one human answers
    the first 6 adversarial images with their true class and the other 6 with the model's."""
    from tests.human.conftest import CLASSES, write_export

    from robustperf.human.db import StudyDB
    from robustperf.human.study import create_study

    tmp_path.mkdir(parents=True, exist_ok=True)
    study = create_study(write_export(tmp_path / "export.npz"), tmp_path / "human", CLASSES, batch_size=12,
                         shuffle_seed=None)
    if answers:
        db = StudyDB(study)
        try:
            db.invite("ann")
            ann = db.labeller_by_name("ann")
            for k, image in enumerate(study.images):
                db.record_answer(ann, image.id, "adv", image.label if k < 6 else image.model_pred, "high")
        finally:
            db.close()
    return study.root


def test_human_level_is_the_scored_study_s_model_plus_average_human(tmp_path: Path) -> None:
    from robustperf.human.report import human_level

    level = human_level(_human_study(tmp_path))
    assert level.value == pytest.approx((25 + 6) / 40)  # Table 4: (C + mean human acc x n_study) / N
    assert level.n_humans == 1 and level.n_images == 12 and "0.775" in level.label
    with pytest.raises(ValueError, match="no human answers yet"):
        human_level(_human_study(tmp_path / "empty", answers=False))
    with pytest.raises(FileNotFoundError, match="human create"):
        human_level(tmp_path / "nowhere")


def test_quality_figure_draws_the_human_line_of_a_study(tmp_path: Path) -> None:
    from robustperf.human.report import human_level
    from robustperf.report.quality import report_figure

    level = human_level(_human_study(tmp_path / "h"))
    caption, fig = report_figure(_rows(tmp_path), evaluation_key=None, metrics=("adv_loss",), bootstrap=0,
                                 human=level)
    assert level.label in caption
    ax = fig.axes[0]
    assert level.label in [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(line.get_ydata()[0] == pytest.approx(level.value) and line.get_linestyle() == ":"
               for line in ax.get_lines())


def test_cli_quality_study_checks_the_human_line_before_any_run(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "q", "runs_dir": str(tmp_path / "runs"),
                                     "base": {"data": {"dataset": "digits"}}, "grid": {}}))
    runner = CliRunner()
    empty = _human_study(tmp_path / "h", answers=False)
    res = runner.invoke(app, ["data", "quality-study", str(study), "--human-study", str(empty)])
    assert res.exit_code == 2 and "no human answers yet" in res.output
    res = runner.invoke(app, ["data", "quality-study", str(study), "--human-accuracy", "90"])
    assert res.exit_code == 2 and "[0, 1]" in res.output
    res = runner.invoke(app, ["data", "quality-study", str(study), "--human-accuracy", "0.9", "--human-study",
                              str(empty)])
    assert res.exit_code == 2 and "not both" in res.output
    assert not (tmp_path / "runs").exists()  # nothing ran
