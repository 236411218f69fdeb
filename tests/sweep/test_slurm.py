"""A real single-node Slurm (Debian's slurm-wlm + munge), started by the test, runs a small study.

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
NodeName={host} CPUs={os.cpu_count() or 1} RealMemory=1000 State=UNKNOWN
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
