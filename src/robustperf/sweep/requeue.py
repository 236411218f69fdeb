"""Give an interrupted task back to its scheduler: ``scontrol requeue`` for Slurm, submitit's own requeue.

A run stopped by a warning signal (`robustperf.training.signals`) has already written its step checkpoint;
what is left is to make sure the task comes back by itself instead of ending as "interrupted":

- Slurm preemption with ``PreemptMode=REQUEUE`` and ``--requeue`` requeues on its own; a time limit
  (``--signal=USR1@120``) does not, so rank 0 of the task calls ``scontrol requeue <job>`` (allowed for a
  job submitted with ``--requeue`` by its owner). The requeued task resumes from the checkpoint.
- submitit: its handler of the preemption signal (USR2) checkpoints the call and requeues; our stop handler
  stood in for it while the run trained, so `RequeueableRun` hands the signal on once the run has stopped.

``ROBUSTPERF_REQUEUE=0`` turns the self-requeue off (the study's ``--resubmit`` then picks the run up).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping

log = logging.getLogger(__name__)

REQUEUE_ENV = "ROBUSTPERF_REQUEUE"


def slurm_job_to_requeue(env: Mapping[str, str] | None = None) -> str | None:
    """The Slurm id ``scontrol requeue`` needs for this task (``<array job>_<task>`` in an array), or None
    when this is not a Slurm batch task, is not rank 0 of it, or self-requeue is off."""
    env = os.environ if env is None else env
    if env.get(REQUEUE_ENV, "1") == "0" or env.get("SLURM_PROCID", "0") != "0" or "SLURM_JOB_ID" not in env:
        return None
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env["SLURM_JOB_ID"]


def requeue_slurm_task(env: Mapping[str, str] | None = None, timeout: float = 30.0) -> bool:
    """``scontrol requeue`` this Slurm task; True if Slurm accepted it (it comes back and resumes)."""
    job = slurm_job_to_requeue(env)
    scontrol = shutil.which("scontrol")
    if job is None or scontrol is None:
        return False
    try:
        proc = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("scontrol requeue %s failed (%s): resubmit with `robustperf study STUDY --resubmit`", job, exc)
        return False
    if proc.returncode != 0:
        log.warning("scontrol requeue %s was refused (%s): resubmit with `robustperf study STUDY --resubmit`",
                    job, (proc.stderr or proc.stdout).strip()[:300])
        return False
    log.warning("Slurm task %s requeued: it resumes from its step checkpoint", job)
    return True


__all__ = ["REQUEUE_ENV", "requeue_slurm_task", "slurm_job_to_requeue"]
