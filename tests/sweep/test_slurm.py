"""A real single-node Slurm (Debian's slurm-wlm + munge), started by the test, runs small studies: submitit and
sbatch arrays, and (issue 23) (a) a 2-rank run through `study --executor slurm` equal to a 2-rank torchrun run,
(b) `scontrol requeue` mid-run, (c) a time-out then `study --resubmit`, (d) its AutoAttack split over 2 ranks.

Needs ``apt-get install slurmctld slurmd slurm-client munge`` and root (slurmd runs jobs as their user).
Deselected by default; run with ``pytest -m slurm tests/sweep/test_slurm.py``.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from robustperf.store import load_index, read_jsonl
from robustperf.sweep import ExecutorSpec, create_executor, expand, study_from_dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sweep_targets  # noqa: E402

pytestmark = pytest.mark.slurm

NEEDED = ("slurmctld", "slurmd", "sbatch", "sinfo", "munged")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_conf(d: Path, host: str, munge_socket: Path) -> str:
    return f"""ClusterName=robustperf
SlurmctldHost={host}
SlurmUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={host} CPUs={os.cpu_count() or 1} RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    missing = [n for n in NEEDED if shutil.which(n) is None]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurmctld slurmd "
                    "slurm-client munge")
    if os.geteuid() != 0:
        pytest.skip("the single-node Slurm of this test runs its daemons as root")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir()
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    (d / "munge").chmod(0o700)
    sock = d / "munge" / "munge.socket"
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(_slurm_conf(d, host, sock))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = [subprocess.Popen(["munged", "-F", "--force", f"--key-file={key}", f"--socket={sock}",
                               f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/munge/munged.log",
                               f"--seed-file={d}/munge/munged.seed"], env=env)]
    time.sleep(0.5)
    procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env))
    procs.append(subprocess.Popen(["slurmd", "-D", "-N", host, "-f", str(conf)], env=env))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout
            if "idle" in out:
                break
            time.sleep(0.5)
        else:
            logs = "".join((d / n).read_text()[-1500:] for n in ("slurmctld.log", "slurmd.log") if (d / n).exists())
            pytest.fail(f"Slurm did not come up within 60 s:\n{logs}")
        yield env
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_submitit_on_a_real_slurm_completes_a_small_study(slurm: dict[str, str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("submitit")
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    study = study_from_dict({"name": "slurm", "grid": {"model.kwargs.width": [1, 2, 3]}})
    configs = [c.resolved() for c in expand(study)]
    spec = ExecutorSpec(name="submitit", cluster="slurm", timeout_min=5, gpus_per_run=0, array_parallelism=2,
                        partition="debug")
    with create_executor("submitit", spec) as ex:
        result = ex.run(functools.partial(sweep_targets.busy_run, n_loops=50), configs, tmp_path)
    assert result.count("finished") == 3, result.results
    assert sorted(r["run_id"] for r in load_index(tmp_path) if r["status"] == "finished") == sorted(
        c.run_id for c in expand(study))
    assert len(read_jsonl(tmp_path / "executions.jsonl")) == 3


def test_manifest_sbatch_array_runs_on_a_real_slurm(slurm: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ROBUSTPERF_RUN_ENTRY_POINTS", "sweep_targets:busy_run")  # run-one calls registered ones only
    study = study_from_dict({"name": "arr", "grid": {"model.kwargs.width": [1, 2]}})
    configs = [c.resolved() for c in expand(study)]
    ex = create_executor("manifest", ExecutorSpec(name="manifest", submit=False, gpus_per_run=0, timeout_min=5))
    ex.manifest_name = "arr"
    ex.run(functools.partial(sweep_targets.busy_run, n_loops=50), configs, tmp_path)
    script = ex.manifest_path.parent / "submit.sbatch"
    env = {**slurm, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "ROBUSTPERF_RUN_ENTRY_POINTS": "sweep_targets:busy_run"}
    subprocess.run(["sbatch", "--wait", "--partition=debug", str(script)], env=env, check=True, timeout=180,
                   capture_output=True)
    assert sorted(r["status"] for r in load_index(tmp_path)) == ["finished", "finished"]


# ------------------------------------------------------------------ issue 23: runs of N ranks, requeue, time-out

DDP = {
    "name": "ddp", "data": {"dataset": "digits", "n_train": 128, "batch_size": 32},
    "model": {"name": "tiny_cnn", "kwargs": {"width": 8}},
    "method": {"name": "pgd_at", "attack": {"eps": 0.1, "step_size": 0.04, "n_steps": 2}},
    "optim": {"epochs": 2, "lr": 0.05}, "eval": {"n_examples": 32, "attack": {"n_steps": 3}},
    "runtime": {"device": "cpu", "progress": False, "log_every_n_steps": 2}, "cost": {"energy_meter": "fake"},
}
SLURM_EXECUTOR = {"name": "slurm", "gpus_per_run": 0, "partition": "debug", "timeout_min": 10, "mem_per_cpu_rank_gb": 1}


def _study_cli(tmp_path: Path, study: dict, *extra: str) -> str:
    import yaml
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    path = tmp_path / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study))
    out = CliRunner().invoke(app, ["study", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-report", *extra])
    assert out.exit_code in (0, 1), out.output
    return out.output


def _last_weights(runs: Path, run_id: str) -> dict:
    from robustperf.store import RunDir
    from robustperf.store import checkpoint as ckpt

    return ckpt.load_checkpoint(RunDir.for_run(runs, run_id).checkpoints / ckpt.LAST)["model"]


def _train_reference(tmp_path: Path, cfg, nproc: int) -> dict:
    """The same run trained without the scheduler (torchrun for nproc > 1), with one thread per rank."""
    script = tmp_path / "ref.py"
    script.write_text("import sys\nfrom robustperf.config import RunConfig\nfrom robustperf.training import train\n"
                      "train(RunConfig.model_validate_json(open(sys.argv[1]).read()), sys.argv[2])\n")
    (tmp_path / "ref.json").write_text(cfg.model_dump_json())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in ("RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
    subprocess.run([sys.executable, *launcher, str(script), str(tmp_path / "ref.json"), str(tmp_path / "ref")],
                   env=env, check=True, capture_output=True, timeout=300)
    return _last_weights(tmp_path / "ref", cfg.run_id)


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _train_steps(runs: Path, run_id: str) -> list[int]:
    from robustperf.store import RunDir

    return [r["step"] for r in RunDir.for_run(runs, run_id).read_metrics() if r["kind"] == "train"]


def _slurm_env(slurm: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_two_rank_run_via_study_executor_slurm_equals_torchrun_and_splits_its_autoattack(
        slurm: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cases (a) and (d): srun of 2 gloo ranks = 2-rank torchrun bit for bit, one record; the study's AutoAttack
    cascade (APGD-CE + APGD-T) split over the 2 ranks gives exactly the 1-process verdicts."""
    import numpy as np

    from robustperf.config import config_from_dict
    from robustperf.store import RunDir
    from robustperf.sweep.study import EvaluateSpec

    _slurm_env(slurm, monkeypatch)
    evaluate = {"attacks": ["apgd-ce", "apgd-t"], "which": "final", "n_examples": 48, "batch_size": 8}
    study = {"name": "ddp2", "base": {**DDP, "name": "ddp2"}, "executor": {**SLURM_EXECUTOR, "procs_per_run": 2},
             "evaluate": evaluate, "fit": {"surface": "none"}}
    output = _study_cli(tmp_path, study)
    cfg = config_from_dict({**DDP, "name": "ddp2"})
    runs = tmp_path / "runs"
    assert "1 finished" in output, output
    rd = RunDir.for_run(runs, cfg.run_id)
    rec = rd.read_record()
    assert rec.status == "finished" and rec.provenance["world_size"] == 2
    assert sorted(p.name for p in runs.iterdir() if (p / "config.json").exists()) == [cfg.run_id]  # one record
    assert _same(_last_weights(runs, cfg.run_id), _train_reference(tmp_path, cfg, 2))
    spec = EvaluateSpec.model_validate(evaluate)
    assert rec.evaluations[spec.key]["n_processes"] == 2
    two = np.load(rd.evaluations_dir / spec.key / "adversarial.npz")
    from robustperf.sweep.run import _evaluate

    one = _evaluate(rd, spec.model_copy(update={"n_examples": 48}), shard=None)  # same checkpoint, one process
    assert one["n_processes"] == 1 and one["robust_acc"] == rec.evaluations[spec.key]["robust_acc"]
    again = np.load(rd.evaluations_dir / spec.key / "adversarial.npz")
    assert np.array_equal(two["robust_flags"], again["robust_flags"]) and 0 < two["robust_flags"].mean() < 1


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_scontrol_requeue_mid_run_resumes_to_the_uninterrupted_weights(
        slurm: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case (b): the task is requeued while it trains; it comes back, resumes from its step checkpoint and ends
    with the weights of a run that was never stopped, no step trained twice."""
    from robustperf.config import config_from_dict
    from robustperf.store import RunDir
    from robustperf.store import checkpoint as ckpt
    from robustperf.sweep import ExecutorSpec, create_executor

    _slurm_env(slurm, monkeypatch)
    base = {**DDP, "name": "rq", "optim": {"epochs": 150, "lr": 0.05},
            "runtime": {**DDP["runtime"], "checkpoint_every_n_steps": 2}}
    cfg = config_from_dict(base)
    runs = tmp_path / "runs"
    ex = create_executor("manifest", ExecutorSpec(**{**SLURM_EXECUTOR, "name": "manifest", "submit": False}))
    ex.manifest_name = "rq"
    from robustperf.sweep.run import run_one

    ex.run(run_one, [cfg.resolved()], runs)
    job = subprocess.run(["sbatch", "--parsable", str(ex.manifest_path.parent / "submit.sbatch")], env=os.environ,
                         check=True, capture_output=True, text=True).stdout.strip().split(";")[0]
    rd = RunDir.for_run(runs, cfg.run_id)
    _wait_for(lambda: (rd.checkpoints / ckpt.LAST).exists(), 120, "the first step checkpoint")
    subprocess.run(["scontrol", "requeue", f"{job}_0"], env=os.environ, check=True, capture_output=True)

    def back_or_done() -> bool:  # Slurm holds a requeued task back for a while: let it start at once
        subprocess.run(["scontrol", "update", f"JobId={job}_0", "StartTime=now"], env=os.environ, capture_output=True)
        return rd.read_record() is not None and rd.read_record().status == "finished"

    _wait_for(back_or_done, 240, "the requeued task to finish")
    resumed = [r for r in rd.read_metrics() if r.get("event") == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] > 0, resumed  # it came back and resumed from a step checkpoint
    steps = _train_steps(runs, cfg.run_id)
    assert steps == sorted(set(steps))  # no step logged (trained) twice
    assert _same(_last_weights(runs, cfg.run_id), _train_reference(tmp_path, cfg, 1))


def test_a_timed_out_array_finishes_with_resubmit_and_nothing_trained_twice(
        slurm: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case (c): a 1-minute --time: Slurm's warning signal (USR1, 50 s before the limit) stops the run at its
    current step with a checkpoint; with self-requeue off the task ends; `--resubmit` finishes the study."""
    from robustperf.config import config_from_dict
    from robustperf.store import RunDir

    _slurm_env(slurm, monkeypatch)
    monkeypatch.setenv("ROBUSTPERF_REQUEUE", "0")
    # longer than the 1-minute limit (~100 s on an idle 2-core VM): Slurm's warning comes when its time-limit
    # check runs, which can be late; a run still training at the limit gets SIGTERM, stopped the same way
    base = {**DDP, "name": "to", "optim": {"epochs": 1200, "lr": 0.05}}
    study = {"name": "to", "base": base, "fit": {"surface": "none"},
             "executor": {**SLURM_EXECUTOR, "timeout_min": 1, "warning_seconds": 50, "max_retries": 0}}
    output = _study_cli(tmp_path, study)
    cfg = config_from_dict(base)
    runs = tmp_path / "runs"
    rd = RunDir.for_run(runs, cfg.run_id)
    assert "1 interrupted" in output and rd.read_record().status == "interrupted", output
    stopped_at = [r for r in rd.read_metrics() if r.get("event") == "interrupted"][-1]["step"]
    monkeypatch.delenv("ROBUSTPERF_REQUEUE")
    output = _study_cli(tmp_path, {**study, "executor": {**study["executor"], "timeout_min": 10}}, "--resubmit")
    assert "resubmitted 1 unfinished task(s) (--array=0%64)" in output, output
    _wait_for(lambda: rd.read_record().status == "finished", 300, "the resubmitted task to finish")
    steps = _train_steps(runs, cfg.run_id)
    assert steps == sorted(set(steps))  # no step logged twice
    resumed = [r["step"] for r in rd.read_metrics() if r.get("event") == "resumed"]
    assert resumed == [stopped_at], (resumed, stopped_at)  # resumed at the step it stopped: nothing lost or redone
    assert _same(_last_weights(runs, cfg.run_id), _train_reference(tmp_path, cfg, 1))


def test_submitit_runs_a_run_as_two_tasks_on_a_real_slurm(slurm: dict[str, str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit starts one task per rank; `run_one` makes them one run (rank 0's summary comes back)."""
    pytest.importorskip("submitit")
    from robustperf.config import config_from_dict
    from robustperf.store import RunDir
    from robustperf.sweep.run import run_one

    _slurm_env(slurm, monkeypatch)
    cfg = config_from_dict({**DDP, "name": "sub2"})
    spec = ExecutorSpec(name="submitit", cluster="slurm", timeout_min=5, gpus_per_run=0, procs_per_run=2,
                        partition="debug", mem_per_cpu_rank_gb=1)
    with create_executor("submitit", spec) as ex:
        result = ex.run(run_one, [cfg.resolved()], tmp_path)
    assert result.count("finished") == 1, result.results
    assert result.results[0]["world_size"] == 2 and result.results[0]["rank"] == 0
    assert RunDir.for_run(tmp_path, cfg.run_id).read_record().provenance["world_size"] == 2
