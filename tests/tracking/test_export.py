"""`runs export`: every destination read back by its own library, equal to the run store, twice without duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robustperf.store.index import iter_run_dirs
from robustperf.tracking import export_runs, read_runs


def _store_series(runs_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The metrics by step straight from metrics.jsonl (not through the exporter's reader)."""
    (rd,) = iter_run_dirs(runs_dir)
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rd.read_metrics():
        for key in ("loss", "lr", "robust_acc", "clean_acc"):
            if key in row:
                out.setdefault(f"{row['kind']}/{key}", []).append((row["step"], float(row[key])))
    return out


def same_points(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    """Same steps in the same order, values equal to float32 precision (TensorBoard stores float32)."""
    return [int(s) for s, _ in got] == [s for s, _ in want] and [v for _, v in got] == pytest.approx(
        [v for _, v in want], rel=1e-6)


def test_csv_and_parquet_tables_match_the_store_and_are_rewritten(runs_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (pip install 'robustperf[report]')")
    (rd,) = iter_run_dirs(runs_dir)
    record = rd.read_record()
    for fmt, read in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        for _ in range(2):
            export_runs(runs_dir, fmt, str(tmp_path / fmt))
        runs, metrics = read(tmp_path / fmt / f"runs.{fmt}"), read(tmp_path / fmt / f"metrics.{fmt}")
        assert list(runs["run_id"]) == [rd.run_id]
        assert runs["final/robust_acc"][0] == pytest.approx(record.final["robust_acc"])
        assert runs["cost/train_flops"][0] == pytest.approx(record.cost["train_flops"])
        assert str(runs["config.model.name"][0]) == "tiny_cnn"
        for key, points in _store_series(runs_dir).items():
            got = metrics[metrics["key"] == key].sort_values("step")
            assert same_points(list(zip(got["step"], got["value"], strict=True)), points), key


def test_mlflow_file_store_read_back_with_mlflow_client(runs_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'robustperf[mlflow]'")
    from robustperf.tracking.mlflow_sink import client

    uri = f"file:{tmp_path / 'mlruns'}"
    (rd,) = iter_run_dirs(runs_dir)
    assert export_runs(runs_dir, "mlflow", uri) == {rd.run_id: "exported"}
    assert export_runs(runs_dir, "mlflow", uri) == {rd.run_id: "unchanged"}
    mlf = client(uri)
    exp = mlf.get_experiment_by_name("robustperf")
    (run,) = mlf.search_runs([exp.experiment_id])  # exactly one run after two exports
    assert run.info.run_name == rd.run_id and run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "tiny_cnn" and run.data.params["optim.epochs"] == "2"
    for key, points in _store_series(runs_dir).items():
        history = sorted((m.step, m.value) for m in mlf.get_metric_history(run.info.run_id, key))
        assert same_points(history, points), key
    assert run.data.metrics["final/robust_acc"] == pytest.approx(rd.read_record().final["robust_acc"])
    artifacts = {a.path for a in mlf.list_artifacts(run.info.run_id)}
    assert {"config.json", "result.json"} <= artifacts
    # the run changes (a new metrics row): the next export replaces it, still one run
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    (copy_rd,) = iter_run_dirs(copy)
    copy_rd.append_metrics({"kind": "train", "step": 99, "loss": 0.5})
    assert export_runs(copy, "mlflow", uri) == {rd.run_id: "replaced"}
    (run,) = mlf.search_runs([exp.experiment_id])
    assert (99, 0.5) in [(m.step, m.value) for m in mlf.get_metric_history(run.info.run_id, "train/loss")]


def test_stored_evaluations_are_exported(runs_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    (rd,) = iter_run_dirs(copy)
    rd.update_record(evaluations={"autoattack-standard_linf_8/255_n100": {"clean_acc": 0.9, "robust_acc": 0.5,
                                                                          "n_examples": 100, "attack": "autoattack"}})
    (run,) = read_runs(copy)
    assert run.summary["evaluations/autoattack-standard_linf_8/255_n100/robust_acc"] == 0.5
    assert run.summary["evaluations/autoattack-standard_linf_8/255_n100/n_examples"] == 100


def test_tensorboard_events_read_back_with_the_event_reader(runs_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'robustperf[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (rd,) = iter_run_dirs(runs_dir)
    root = tmp_path / "tb"
    assert export_runs(runs_dir, "tensorboard", str(root)) == {rd.run_id: "exported"}
    assert export_runs(runs_dir, "tensorboard", str(root)) == {rd.run_id: "unchanged"}
    assert [p.name for p in root.iterdir()] == [rd.run_id]
    acc = EventAccumulator(str(root / rd.run_id))
    acc.Reload()
    for key, points in _store_series(runs_dir).items():
        assert same_points([(e.step, e.value) for e in acc.Scalars(key)], points), key
    (final,) = acc.Scalars("final/robust_acc")
    assert final.value == pytest.approx(rd.read_record().final["robust_acc"])
    assert len(list((root / rd.run_id).glob("events.out.tfevents.*"))) == 1


def test_wandb_offline_run_read_back_from_its_run_file(runs_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="pip install 'robustperf[wandb]'")
    from wandb_records import read_offline_run

    from robustperf.tracking.wandb_sink import offline_dirs

    (rd,) = iter_run_dirs(runs_dir)
    root = tmp_path / "wb"
    assert export_runs(runs_dir, "wandb", str(root)) == {rd.run_id: "exported"}
    assert export_runs(runs_dir, "wandb", str(root)) == {rd.run_id: "unchanged"}
    (folder,) = offline_dirs(root, rd.run_id)
    got = read_offline_run(folder)
    assert got["run_id"] == rd.run_id
    for key, points in _store_series(runs_dir).items():
        assert same_points(got["history"][key], points), key
    assert got["summary"]["final/robust_acc"] == pytest.approx(rd.read_record().final["robust_acc"])
    assert got["config"]["model.name"] == "tiny_cnn"


def test_bad_destination_and_missing_runs_fail_before_work(runs_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use one of csv, parquet, mlflow, tensorboard, wandb"):
        export_runs(runs_dir, "neptune")
    with pytest.raises(FileNotFoundError, match="no runs in"):
        export_runs(tmp_path / "empty", "csv")
    with pytest.raises(FileNotFoundError, match="no run nope"):
        read_runs(runs_dir, ["nope"])


def test_the_report_travels_as_an_artifact(runs_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'robustperf[mlflow]'")
    from robustperf.tracking.mlflow_sink import client

    report = tmp_path / "reports" / "all"
    report.mkdir(parents=True)
    (report / "index.html").write_text("<html><body>report</body></html>")
    uri = f"file:{tmp_path / 'mlruns'}"
    for _ in range(2):
        export_runs(runs_dir, "mlflow", uri, report=report)
    mlf = client(uri)
    exp = mlf.get_experiment_by_name("robustperf")
    reports = mlf.search_runs([exp.experiment_id], filter_string="tags.`robustperf.kind` = 'report'")
    assert len(reports) == 1 and len(mlf.search_runs([exp.experiment_id])) == 2  # the run and one report
    assert [a.path for a in mlf.list_artifacts(reports[0].info.run_id, "report")] == ["report/index.html"]
    export_runs(runs_dir, "csv", str(tmp_path / "t"), report=report)
    assert (tmp_path / "t" / "report" / "index.html").read_text() == "<html><body>report</body></html>"
    with pytest.raises(ValueError, match="TensorBoard has no artifacts"):
        export_runs(runs_dir, "tensorboard", str(tmp_path / "tb"), report=report)
    pytest.importorskip("wandb", reason="pip install 'robustperf[wandb]'")
    from wandb_records import complete_records

    from robustperf.tracking.wandb_sink import offline_dirs

    for _ in range(2):
        export_runs(runs_dir, "wandb", str(tmp_path / "wb"), report=report)
    (folder,) = offline_dirs(tmp_path / "wb", "report-all")  # rewritten, not duplicated
    records = complete_records(next(folder.glob("run-*.wandb")))
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "report" and [e.path for e in artifact.manifest.contents] == ["index.html"]
