"""Fault injection: kill -9 inside every write window, then resume; the outcome must equal an uninterrupted run.

Each trial runs the real CLI in a subprocess with a SIGKILL planted by ``inject.py`` (see there) inside
one write window (checkpoint, result.json, a metrics append, the index, the report) or kills a study's
parent process alone, reruns the same command, and checks against an uninterrupted reference:
identical weights, identical metric rows (0 duplicated, 0 lost), the same FLOPs and samples and a
cost in seconds that is not inflated, no temp file left. Four tests run by default (one kill trial,
SIGTERM, two studies at once, the same study twice); ``-m slow`` adds the rest: 24 kill/stop trials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from robustperf.store import RunDir, load_index

HERE = Path(__file__).resolve().parent
INJECT = HERE / "inject.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# digits, 4 steps per epoch, 2 epochs: last.pt every 2 steps and at each epoch end, a metrics row every step
CONFIG: dict[str, Any] = {
    "name": "fault",
    "data": {"dataset": "digits", "n_train": 120, "n_test": 60, "batch_size": 30},
    "model": {"name": "tiny_cnn", "kwargs": {"width": 2}},
    "method": {"name": "pgd_at", "attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 1}},
    "optim": {"epochs": 2, "lr": 0.05, "ema_decay": 0.9},
    "eval": {"n_examples": 40, "attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 2, "loss": "cw"}},
    "cost": {"energy_meter": "none"},
    "runtime": {"device": "cpu", "progress": False, "log_every_n_steps": 1, "checkpoint_every_n_steps": 2},
}
DROP = {"seconds", "eval_seconds", "time"}


def _cli(args: list[str], fault: tuple[str, str, int] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    prefix = [sys.executable, str(INJECT), fault[0], fault[1], str(fault[2]), "--"] if fault else \
        [sys.executable, "-m", "robustperf"]
    return subprocess.run([*prefix, *args], env=ENV, capture_output=True, text=True, timeout=timeout)


def _rows(rd: RunDir) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in DROP} for r in rd.read_metrics() if r.get("kind") != "event"]


def _weights(rd: RunDir) -> dict[str, torch.Tensor]:
    payload = torch.load(rd.checkpoints / "last.pt", map_location="cpu", weights_only=True)
    return {**payload["model"], **{f"ema.{k}": v for k, v in (payload["ema"] or {}).get("module", {}).items()}}


def _only_run(runs_dir: Path) -> RunDir:
    dirs = [p for p in runs_dir.iterdir() if p.is_dir() and (p / "config.json").exists()]
    assert len(dirs) == 1, dirs
    return RunDir(dirs[0])


def assert_same_as(rd: RunDir, ref: RunDir) -> None:
    """Identical weights and metric rows, same work counted, cost not inflated, no temp file left."""
    record, expected = rd.read_record(), ref.read_record()
    assert record is not None and expected is not None and record.status == "finished", record
    a, b = _weights(rd), _weights(ref)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = _rows(rd)
    keys = [(r["kind"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated metric rows"
    assert rows == _rows(ref), "lost or changed metric rows"
    assert record.final == expected.final
    assert record.cost["train_flops"] == expected.cost["train_flops"]
    assert record.cost["samples_seen"] == expected.cost["samples_seen"]
    assert record.cost["seconds"] <= 3 * expected.cost["seconds"] + 5, "cost inflated"
    assert not list(rd.path.rglob("*.tmp")), "stale temp files"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "fault.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def reference(config_file: Path, tmp_path_factory) -> RunDir:
    runs = tmp_path_factory.mktemp("ref")
    out = _cli(["train", str(config_file), "--runs-dir", str(runs)])
    assert out.returncode == 0, out.stderr[-2000:]
    return _only_run(runs)


# (window, file, nth occurrence): the trials of one training run
TRAIN_TRIALS = [
    ("replace", "last.pt", 1), ("replace", "last.pt", 2), ("replace", "last.pt", 3), ("replace", "last.pt", 4),
    ("replace", "last.pt", 5), ("replace", "last.prev.pt", 2), ("replace", "best.pt", 1),
    ("replace", "result.json", 1), ("replace", "result.json", 2), ("replace", "result.json", 3),
    ("replace", "result.json", 4), ("replace", "config.json", 1),
    ("append", "metrics.jsonl", 1), ("append", "metrics.jsonl", 3), ("append", "metrics.jsonl", 5),
    ("append", "metrics.jsonl", 8), ("append", "metrics.jsonl", 10),
]
# by default one trial (the window that found a bug: killed between a step checkpoint at the run's last step
# and the final evaluation); `-m slow` runs all 17
FAST = {("replace", "result.json", 3)}


@pytest.mark.parametrize("fault", [pytest.param(t, marks=() if t in FAST else pytest.mark.slow, id="-".join(map(str, t)))
                                   for t in TRAIN_TRIALS])
def test_kill_in_a_training_write_window_then_resume(fault, config_file: Path, reference: RunDir, tmp_path: Path) -> None:
    killed = _cli(["train", str(config_file), "--runs-dir", str(tmp_path)], fault=fault)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    resumed = _cli(["train", str(config_file), "--runs-dir", str(tmp_path)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_as(_only_run(tmp_path), reference)


@pytest.mark.parametrize("nth", [pytest.param(1, id="after-first-checkpoint"),
                                 pytest.param(3, id="after-epoch-end", marks=pytest.mark.slow)])
def test_sigterm_then_resubmit_resumes_to_identical_weights(nth: int, config_file: Path, reference: RunDir,
                                                            tmp_path: Path) -> None:
    """SIGTERM as Slurm sends it: checkpoint at the current step, exit 128+15 as interrupted; the resubmitted
    job resumes to the uninterrupted run's weights."""
    stopped = _cli(["train", str(config_file), "--runs-dir", str(tmp_path)], fault=("term", "last.pt", nth))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert "SIGTERM received: checkpoint written at step" in " ".join(stopped.stderr.split())
    assert _only_run(tmp_path).read_record().status == "interrupted"
    resumed = _cli(["train", str(config_file), "--runs-dir", str(tmp_path)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_as(_only_run(tmp_path), reference)


# ------------------------------------------------------------------------------------ studies


def _study(tmp_path: Path, name: str, widths: list[int], epochs: int = 2) -> Path:
    study = {"name": name, "base": {**CONFIG, "optim": {**CONFIG["optim"], "epochs": epochs}},
             "grid": {"model.kwargs.width": widths}, "fit": {"bootstrap": 0, "surface": "none", "envelope": False},
             "executor": {"workers": 1, "gpus_per_run": 0, "cpus_per_run": 1}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def reference_study(tmp_path_factory) -> Path:
    """The uninterrupted two-run study every study trial is compared with (run dirs by run id)."""
    root = tmp_path_factory.mktemp("ref_study")
    out = _cli(["study", str(_study(root, "s", [2, 3])), "--runs-dir", str(root / "runs"), "--no-report"])
    assert out.returncode == 0, out.stderr[-2000:]
    return root / "runs"


def _assert_study_same(runs: Path, ref_runs: Path) -> None:
    ref_ids = sorted(r["run_id"] for r in load_index(ref_runs))
    assert sorted(r["run_id"] for r in load_index(runs)) == ref_ids
    for run_id in ref_ids:
        assert_same_as(RunDir(runs / run_id), RunDir(ref_runs / run_id))


STUDY_TRIALS = [("replace", "index.sqlite", 1), ("replace", "report.html", 1), ("replace", "analysis.json", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("fault", [pytest.param(t, id="-".join(map(str, t))) for t in STUDY_TRIALS])
def test_kill_the_study_while_it_writes_the_index_or_report(fault, reference_study: Path, tmp_path: Path) -> None:
    study = _study(tmp_path, "s", [2, 3])
    args = ["study", str(study), "--runs-dir", str(tmp_path / "runs")]
    killed = _cli(args, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    again = _cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 skipped" in again.stdout  # nothing was trained again
    _assert_study_same(tmp_path / "runs", reference_study)
    assert not list((tmp_path / "runs").glob(".*.tmp"))


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("after_checkpoints", [pytest.param(1, id="first-checkpoint"),
                                               pytest.param(3, id="third-checkpoint")])
def test_kill_the_study_parent_alone_leaves_no_orphan(after_checkpoints: int, reference_study: Path,
                                                      tmp_path: Path) -> None:
    """kill -9 of the study process only: its worker stops too, and the rerun trains nothing twice."""
    study = _study(tmp_path, "s", [2, 3])
    args = [sys.executable, "-m", "robustperf", "study", str(study), "--runs-dir", str(tmp_path / "runs"), "--no-report"]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline:
        ckpts = list((tmp_path / "runs").glob("*/checkpoints/last*.pt"))
        if len(ckpts) >= min(after_checkpoints, 2) and _children(proc.pid):
            workers = [c for p in _children(proc.pid) for c in [p, *_children(p)]]
            break
        time.sleep(0.05)
    assert workers, "the study never started a worker"
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, not its process group
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived its study"
    again = _cli(args[3:])
    assert again.returncode == 0, again.stderr[-2000:]
    _assert_study_same(tmp_path / "runs", reference_study)


def test_two_studies_on_one_runs_directory_train_each_run_once(reference_study: Path, tmp_path: Path) -> None:
    """Two studies sharing their runs at once: both succeed, every run is trained by one of them only."""
    runs = tmp_path / "runs"
    procs = [subprocess.Popen([sys.executable, "-m", "robustperf", "study", str(_study(tmp_path, name, [2, 3])),
                               "--runs-dir", str(runs), "--no-report"], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    _assert_study_same(runs, reference_study)
    for rd in (RunDir(runs / r["run_id"]) for r in load_index(runs)):  # trained once: no resumes, one start
        events = [r for r in rd.read_metrics() if r.get("kind") == "event"]
        assert events == [], events


def test_the_same_study_twice_at_once_refuses_the_second(tmp_path: Path) -> None:
    from robustperf.store.lock import study_lock

    study = _study(tmp_path, "s", [2])
    with study_lock(tmp_path / "runs", "s"):  # held as a running `robustperf study` holds it
        out = _cli(["study", str(study), "--runs-dir", str(tmp_path / "runs"), "--no-report"])
    assert out.returncode == 3
    message = " ".join(out.stderr.split())
    assert f"study s is being run by PID {os.getpid()}" in message and "--force" in message
    assert not [p for p in (tmp_path / "runs").iterdir() if (p / "config.json").exists()]
