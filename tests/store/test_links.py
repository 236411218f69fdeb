"""Planted links in a shared runs directory: every store write refuses them and the target's bytes stay."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robustperf.store.io import UnsafeLinkError, append_jsonl, write_json_atomic
from robustperf.store.lock import RunLock, study_lock
from robustperf.store.metrics_file import repair_metrics_tail, truncate_metrics_after
from robustperf.store.record import RunDir, RunRecord

VICTIM = b'{"step": 1}\n{"precious": "bytes, no newline at the end'


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_bytes(VICTIM)
    return victim


def _run(tmp_path: Path) -> RunDir:
    rd = RunDir(tmp_path / "runs" / "r-1")
    rd.path.mkdir(parents=True)
    rd.config_path.write_text("{}")
    return rd


PLANTS: dict[str, tuple[Callable[[RunDir], Path], Callable[[RunDir], object]]] = {
    "lock": (lambda rd: rd.path / ".lock", lambda rd: RunLock(rd.path).acquire()),
    "studies-lock": (lambda rd: rd.path.parent / "studies" / ".s.lock",
                     lambda rd: study_lock(rd.path.parent, "s").acquire()),
    "metrics-append": (lambda rd: rd.metrics_path, lambda rd: rd.append_metrics({"step": 2})),
    "metrics-tail-repair": (lambda rd: rd.metrics_path, lambda rd: repair_metrics_tail(rd.metrics_path)),
    "metrics-resume-cut": (lambda rd: rd.metrics_path,
                           lambda rd: truncate_metrics_after(rd.metrics_path, 0, size_at_checkpoint=3)),
    "metrics-resume-rewrite": (lambda rd: rd.metrics_path, lambda rd: truncate_metrics_after(rd.metrics_path, 0)),
}


@pytest.mark.parametrize("name", list(PLANTS))
def test_a_planted_file_link_is_refused_and_its_target_unchanged(tmp_path: Path, name: str) -> None:
    rd = _run(tmp_path)
    victim = _victim(tmp_path)
    where, act = PLANTS[name]
    link = where(rd)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    with pytest.raises(UnsafeLinkError, match=f"refusing to write through {link}: it is a symbolic link"):
        act(rd)
    assert victim.read_bytes() == VICTIM and link.is_symlink()


def test_a_planted_hard_link_is_refused(tmp_path: Path) -> None:
    rd = _run(tmp_path)
    victim = _victim(tmp_path)
    os.link(victim, rd.metrics_path)
    with pytest.raises(UnsafeLinkError, match="a file with 2 hard links"):
        rd.append_metrics({"step": 2})
    with pytest.raises(UnsafeLinkError, match="a file with 2 hard links"):
        repair_metrics_tail(rd.metrics_path)
    assert victim.read_bytes() == VICTIM


def test_a_result_link_is_replaced_never_written_through(tmp_path: Path) -> None:
    rd = _run(tmp_path)
    victim = _victim(tmp_path)
    rd.result_path.symlink_to(victim)
    rd.write_record(RunRecord(run_id="r-1", status="running"))
    assert victim.read_bytes() == VICTIM
    assert not rd.result_path.is_symlink() and rd.read_record().status == "running"  # type: ignore[union-attr]


@pytest.mark.parametrize("folder", ["checkpoints", "run"])
def test_a_planted_folder_link_is_refused(tmp_path: Path, folder: str) -> None:
    import torch

    from robustperf.store.checkpoint import save_last

    victim_dir = tmp_path / "elsewhere"
    victim_dir.mkdir()
    (victim_dir / "last.pt").write_bytes(VICTIM)
    runs = tmp_path / "runs"
    runs.mkdir()
    if folder == "checkpoints":
        rd = _run(tmp_path)
        rd.checkpoints.symlink_to(victim_dir)
        with pytest.raises(UnsafeLinkError, match="checkpoints: it is a symbolic link"):
            save_last(rd.checkpoints, {"format": 1, "w": torch.zeros(2)})
        with pytest.raises(UnsafeLinkError):
            write_json_atomic(rd.checkpoints / "x.json", {})
    else:
        (runs / "r-1").symlink_to(victim_dir)
        with pytest.raises(UnsafeLinkError, match="r-1: it is a symbolic link"):
            RunLock(runs / "r-1").acquire()
        with pytest.raises(UnsafeLinkError):
            append_jsonl(runs / "r-1" / "metrics.jsonl", {})
    assert sorted(p.name for p in victim_dir.iterdir()) == ["last.pt"]
    assert (victim_dir / "last.pt").read_bytes() == VICTIM


def test_training_into_a_run_with_a_planted_metrics_link_stops_in_one_line(tmp_path: Path) -> None:
    from robustperf.cli.app import app
    from robustperf.config import load_config

    cfg = {"data": {"dataset": "digits", "n_train": 60, "n_test": 40, "batch_size": 30},
           "model": {"name": "tiny_cnn", "kwargs": {"width": 2}}, "optim": {"epochs": 1},
           "method": {"attack": {"n_steps": 1}}, "eval": {"n_examples": 20, "attack": {"n_steps": 1}},
           "cost": {"energy_meter": "none"}, "runtime": {"device": "cpu", "progress": False}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "runs" / load_config(tmp_path / "cfg.yaml").run_id
    run.mkdir(parents=True)
    victim = _victim(tmp_path)
    (run / "metrics.jsonl").symlink_to(victim)
    out = CliRunner().invoke(app, ["train", str(tmp_path / "cfg.yaml"), "--runs-dir", str(tmp_path / "runs")],
                             terminal_width=400)
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and "metrics.jsonl: it is a symbolic link" in lines[0], out.output
    assert victim.read_bytes() == VICTIM
