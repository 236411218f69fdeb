"""How a scheduler script starts one run: its resource request and the launch line of its N ranks.

A run of ``world_size = nodes_per_run x ranks_per_node`` processes is one task of the array:

- Slurm: ``--nodes``/``--ntasks-per-node`` (+ ``--gpus-per-task=1``) and ``srun``; every rank reads its rank,
  world size and local rank from ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID`` and the rendezvous address
  from the first host of the allocation (`robustperf.training.distributed`).
- LSF and PBS: ``torchrun`` (``--standalone`` on one node; on several, one torchrun per node through
  ``blaunch``/``pbsdsh`` meeting at the first host's c10d store).

The Python that runs is resolved when the task starts: ``$ROBUSTPERF_PYTHON``, else the active virtual
environment's (``$VIRTUAL_ENV/bin/python``, exported by ``sbatch`` from the submitting shell), else the one
that wrote the script.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from robustperf.sweep.study import ExecutorSpec

RDZV_PORT = 29500


def python_lines() -> list[str]:
    """Shell lines that set ``$PY`` to the interpreter of the run (resolved at run time, not plan time)."""
    planned = shlex.quote(sys.executable)
    return ['PY="${ROBUSTPERF_PYTHON:-}"',
            'if [ -z "$PY" ] && [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then '
            'PY="$VIRTUAL_ENV/bin/python"; fi',
            f'PY="${{PY:-{planned}}}"']


def run_one_args(manifest: Path, index_expr: str | None = None) -> str:
    """``-m robustperf run-one --manifest M`` (and ``--index`` when the script computes it)."""
    index = f" --index {index_expr}" if index_expr else ""
    return f"-m robustperf run-one --manifest {shlex.quote(str(manifest))}{index}"


def slurm_directives(spec: ExecutorSpec) -> list[str]:
    """The ``#SBATCH`` resource lines of one run (time, array and job name are the caller's)."""
    lines = [f"#SBATCH --nodes={spec.nodes_per_run}", f"#SBATCH --ntasks-per-node={spec.ranks_per_node}",
             f"#SBATCH --cpus-per-task={spec.cpus_per_rank}"]
    if spec.mem_per_rank_gb:  # 0: ask for no memory (the partition's default)
        lines.append(f"#SBATCH --mem-per-cpu={-(-spec.mem_per_rank_gb * 1024 // spec.cpus_per_rank)}M")
    if spec.gpus_per_run:
        lines.append(f"#SBATCH --gpus-per-task={1 if spec.world_size > 1 else spec.gpus_per_run}")
    if spec.world_size > 1:  # the warning goes to every rank of the job step, not only to the batch shell
        lines.append(f"#SBATCH --signal=USR1@{spec.warning_seconds}")
    else:  # the batch shell exec's the run: it is the process that gets the warning
        lines.append(f"#SBATCH --signal=B:USR1@{spec.warning_seconds}")
    return lines


def slurm_launch(manifest: Path, spec: ExecutorSpec) -> list[str]:
    """The body of an sbatch script: one process, or ``srun`` of world_size ranks with a rendezvous."""
    lines = python_lines()
    if spec.world_size == 1:
        return [*lines, f'exec "$PY" {run_one_args(manifest)}']
    return [*lines,
            'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
            'export MASTER_PORT="$((20000 + SLURM_JOB_ID % 20000))"',
            f'exec srun --ntasks={spec.world_size} --kill-on-bad-exit=0 "$PY" {run_one_args(manifest)}']


def torchrun_launch(manifest: Path, spec: ExecutorSpec, index_expr: str, hosts_expr: str, per_node: str) -> list[str]:
    """LSF/PBS body: torchrun of ranks_per_node ranks on each of nodes_per_run nodes.

    Args:
        index_expr: shell expression of the 0-based manifest index (the array variable, offset applied).
        hosts_expr: shell command printing the job's distinct hosts, one a line.
        per_node: the scheduler's "run this on every host" prefix (``blaunch -z "$HOSTS"``, ``pbsdsh -u``).
    """
    lines = [*python_lines(), f"IDX={index_expr}"]
    if spec.world_size == 1:
        return [*lines, f'exec "$PY" {run_one_args(manifest, "$IDX")}']
    torchrun = f'"$PY" -m torch.distributed.run --nproc-per-node={spec.ranks_per_node}'
    if spec.nodes_per_run == 1:
        return [*lines, f'exec {torchrun} --standalone {run_one_args(manifest, "$IDX")}']
    return [*lines, f'HOSTS="$({hosts_expr})"', 'HEAD="$(echo "$HOSTS" | head -n 1)"',
            f'exec {per_node} {torchrun} --nnodes={spec.nodes_per_run} --rdzv-backend=c10d '
            f'--rdzv-endpoint="$HEAD:{RDZV_PORT}" --rdzv-id="$IDX" {run_one_args(manifest, "$IDX")}']


__all__ = ["python_lines", "run_one_args", "slurm_directives", "slurm_launch", "torchrun_launch"]
