"""Kill a real study midway (the CLI and its worker processes); the rerun completes it, nothing lost or redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from robustperf.store import load_index
from robustperf.sweep import expand, study_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_targets import TINY  # noqa: E402


def test_killed_real_study_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    """Kill `robustperf study` (and its workers) after the first run finished; the rerun completes the rest."""
    study = {"name": "kill", "base": {**TINY, "optim": {"epochs": 3, "lr": 0.05}}, "runs_dir": str(tmp_path / "runs"),
             "grid": {"model.kwargs.width": [2, 3, 4, 5]}, "fit": {"bootstrap": 0, "surface": "none"},
             "executor": {"workers": 2, "gpus_per_run": 0}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    cmd = [sys.executable, "-m", "robustperf", "study", str(path), "--no-report"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        statuses = [r["status"] for r in load_index(tmp_path / "runs")] if (tmp_path / "runs").exists() else []
        if "finished" in statuses:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["run_id"]: (r["status"], r["ended_at"]) for r in load_index(tmp_path / "runs")}
    n_done = sum(1 for status, _ in before.values() if status == "finished")
    assert 1 <= n_done < 4
    subprocess.run(cmd, check=True, timeout=600, capture_output=True)
    rows = load_index(tmp_path / "runs")
    expected = {c.run_id for c in expand(study_from_dict(study))}
    assert {r["run_id"] for r in rows} == expected and all(r["status"] == "finished" for r in rows)
    after = {r["run_id"]: r["ended_at"] for r in rows}
    for run_id, (status, ended_at) in before.items():  # finished runs were not redone: same end time
        if status == "finished":
            assert after[run_id] == ended_at
