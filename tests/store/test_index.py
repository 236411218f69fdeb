"""The run index: rebuilt from run directories, disposable, one row per run whatever its state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from robustperf.config import RunConfig
from robustperf.store import RunDir, RunRecord, load_index, load_index_frame, rebuild_index


def _run(root: Path, width: int, **record: object) -> str:
    cfg = RunConfig.model_validate({"model": {"kwargs": {"width": width}}})
    rd = RunDir.for_run(root, cfg.run_id)
    rd.write_config(cfg.resolved())
    if record:
        rd.write_record(RunRecord(run_id=cfg.run_id, **record))
    return cfg.run_id


def test_index_has_one_row_per_run_in_every_state(tmp_path: Path) -> None:
    done = _run(tmp_path, 1, status="finished", final={"robust_acc": 0.5, "n_params": 1000},
                cost={"train_flops": 1e12, "energy_kwh": 0.25}, evaluations={"aa": {"robust_acc": 0.45}})
    failed = _run(tmp_path, 2, status="failed", failure_reason="TrainingError: loss is NaN")
    pending = _run(tmp_path, 3)
    corrupt = _run(tmp_path, 4, status="running")
    (tmp_path / corrupt / "result.json").write_text("{not json")
    (tmp_path / "reports").mkdir()  # folders without config.json are not runs
    rows = {r["run_id"]: r for r in load_index(tmp_path)}
    assert set(rows) == {done, failed, pending, corrupt}
    assert rows[done]["status"] == "finished" and rows[done]["final.robust_acc"] == 0.5
    assert rows[done]["cost.train_flops"] == 1e12 and rows[done]["evaluations.aa.robust_acc"] == 0.45
    assert rows[done]["config.model.kwargs.width"] == 1
    assert rows[failed]["failure_reason"] == "TrainingError: loss is NaN"
    assert rows[pending]["status"] == "pending"
    assert rows[corrupt]["status"] == "corrupt" and "unreadable" in rows[corrupt]["failure_reason"]


def test_index_is_disposable_and_reflects_new_runs(tmp_path: Path) -> None:
    _run(tmp_path, 1, status="finished", final={"robust_acc": 0.5})
    path = rebuild_index(tmp_path)
    first = load_index(tmp_path, rebuild=False)
    path.unlink()
    assert load_index(tmp_path) == first  # rebuilt from the directories, nothing lost
    _run(tmp_path, 2, status="finished", final={"robust_acc": 0.6})
    assert len(load_index(tmp_path, rebuild=False)) == 1  # a stale index until rebuilt
    assert len(load_index(tmp_path)) == 2
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    finally:
        con.close()
    assert not list(tmp_path.glob(".index.sqlite.tmp"))  # replaced atomically
    frame = load_index_frame(tmp_path)
    assert sorted(frame["final.robust_acc"]) == [0.5, 0.6]


def test_empty_or_missing_runs_dir(tmp_path: Path) -> None:
    assert load_index(tmp_path / "typo") == []
    assert not (tmp_path / "typo").exists()  # reading never creates a runs directory
    (tmp_path / "new").mkdir()
    assert load_index(tmp_path / "new") == []
    assert (tmp_path / "new" / "index.sqlite").exists()
