"""The steps of one study run that `run_one` (one process) and `run_ranks` (one rank of several) share:
the outcome names, whether a run still has work, training, the study's evaluation, recording a failure.

Both `run.py` and `ranks.py` import this module, and neither imports the other at load time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustperf.config import RunConfig
from robustperf.store import RunDir, RunSession
from robustperf.sweep.study import EvaluateSpec

log = logging.getLogger(__name__)

SKIPPED = "skipped"
FINISHED = "finished"
FAILED = "failed"
INTERRUPTED = "interrupted"
LOCKED = "locked"  # another process holds the run; nothing was done, try again later


def world_size_from_env(env: Mapping[str, str] | None = None) -> int:
    """Processes of this run from the launcher's variables (torchrun's WORLD_SIZE, srun's SLURM_NTASKS);
    read without importing torch."""
    env = os.environ if env is None else env
    value = env.get("WORLD_SIZE") or (env.get("SLURM_NTASKS") if "SLURM_PROCID" in env else None) or "1"
    return int(value) if value.isdigit() else 1


def needs_work(rd: RunDir, spec: EvaluateSpec | None) -> tuple[bool, bool]:
    """(the run is finished, its study evaluation is still to do)."""
    needs_eval = spec is not None and bool(spec.attacks) and not _evaluation_done(rd, spec)
    return rd.is_finished(), needs_eval


def _train(cfg: RunConfig, runs_dir: str | Path) -> str | None:
    """Train (or resume) the run; the reason when a stop signal interrupted it, else None."""
    from robustperf.training import TrainingInterrupted, train

    try:
        rd = train(cfg, runs_dir, resume=True)
    except TrainingInterrupted as exc:
        return str(exc)
    record = rd.read_record()
    if record is None or record.status != "finished":
        status = None if record is None else record.status
        reason = None if record is None else record.failure_reason
        raise RuntimeError(f"training ended with status {status!r}: {reason or 'no reason recorded'}")
    return None


def _evaluation_done(rd: RunDir, spec: EvaluateSpec) -> bool:
    record = rd.read_record()
    entry = (record.evaluations or {}).get(spec.key) if record is not None else None
    return isinstance(entry, dict) and entry.get("status") != FAILED


def _evaluate(rd: RunDir, spec: EvaluateSpec, shard: Any = None, local_rank: int = 0) -> dict[str, Any]:
    """Evaluate the run's checkpoint on a fixed held-out subset; store the summary in result.json
    (`robustperf.evaluation.run.evaluate_run`, at the run's own threat model, method.attack, as the per-epoch
    evaluation of the training engine uses).

    With a `shard` (`robustperf.attacks.sharding.Shard`) the run's ranks split the attack batches; each gets
    the whole result and rank 0 alone stores it.
    """
    from robustperf.evaluation.run import RunEvaluation, evaluate_run

    def entry(ev: RunEvaluation) -> dict[str, Any]:
        return {**ev.result.summary(), "checkpoint": spec.which, "attacks": list(spec.attacks),
                "n_examples": int(len(ev.y)), "seconds": ev.seconds,
                "n_processes": shard.world_size if shard is not None else 1}

    attack = spec.attacks[0] if len(spec.attacks) == 1 else list(spec.attacks)
    # "final" is the last checkpoint ("last" in the training engine's naming)
    ev = evaluate_run(rd, attack=attack, which="last" if spec.which == "final" else spec.which,
                      n_examples=spec.n_examples, key=spec.key, data_seed=spec.seed, device="auto",
                      device_setting="runtime.device", local_rank=local_rank, shard=shard, entry=entry,
                      batch_size=spec.batch_size, seed=spec.seed)
    return ev.summary


def _record_failure(rd: RunDir, config: Mapping[str, Any], reason: str, trace: str) -> None:
    """A failed attempt in the run's record (config written if it never was), whatever its engine."""
    try:
        RunSession.record_failure(rd, config, reason, trace)
    except OSError as exc:  # the disk itself failed: nothing more we can record
        log.error("could not record failure of %s: %s", rd.run_id, exc)


def _record_evaluation_failure(rd: RunDir, spec: EvaluateSpec, reason: str) -> None:
    """A failed study evaluation under its key (the trained run stays finished; the next call retries it)."""
    log.error("evaluation of run %s failed: %s", rd.run_id, reason)
    rd.update_record(evaluations={spec.key: {"status": FAILED, "failure_reason": reason}})
