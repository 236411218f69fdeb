"""`run_one` for one rank of a multi-process run: rank 0 owns the run, the others follow its word.

A run launched as N processes (``srun``, ``torchrun``, submitit's tasks, a Ray placement group) calls
`run_one` in every rank. Rank 0 alone takes the run lock, decides whether there is work (finished?
evaluation done?), and writes the record and the checkpoints (the training engine's rank-0 rule); it tells
the others through the process group whether to train, to evaluate only, or to leave (done, or held by
another process). Training and the study's evaluation (its attack batches split across the ranks:
`robustperf.attacks.sharding`) then run on every rank; each rank returns a summary, rank 0's is the run's.
The process group is created here (gloo on CPU, NCCL on GPU; rendezvous from the launcher's variables or the
Slurm allocation) and kept for the training engine, which finds it initialised.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.store.lock import RunLockedError
from robustperf.store.owner import owned_run
from robustperf.sweep.run_steps import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    LOCKED,
    SKIPPED,
    _evaluate,
    _record_evaluation_failure,
    _record_failure,
    _train,
    needs_work,
)
from robustperf.sweep.study import EvaluateSpec

log = logging.getLogger(__name__)

TRAIN, EVALUATE = "train", "evaluate"  # what rank 0 tells the others, besides a final status


def run_ranks(cfg: RunConfig, rd: RunDir, runs_dir: str | Path, spec: EvaluateSpec | None,
              summary: dict[str, Any]) -> dict[str, Any]:
    """One rank's part of `run_one` (same arguments and summary; plus ``rank`` and ``world_size``)."""
    import torch
    import torch.distributed as dist

    from robustperf.device import resolve_device
    from robustperf.training.distributed import dist_info_from_env, init_distributed

    info = dist_info_from_env()
    summary.update(rank=info.rank, world_size=info.world_size)
    device = resolve_device(cfg.runtime.device, local_rank=info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = init_distributed(info, device)
    start = time.perf_counter()
    owned = ExitStack()  # rank 0: the run's owner (`owned_run`), held until every rank is done
    try:
        word: list[Any] = [None, False]
        if info.is_main:
            word[0] = _decide(rd, spec, summary, owned)
            word[1] = needs_work(rd, spec)[1]
        dist.broadcast_object_list(word, src=0)
        decision, needs_eval = word
        if decision not in (TRAIN, EVALUATE):  # rank 0 already filled its summary; the others copy the status
            if not info.is_main:
                summary.update(status=decision, seconds=0.0, evaluation=None,
                               failure_reason=f"rank 0 says: {decision}")
            return summary
        outcome = _train_and_evaluate(cfg, rd, runs_dir, spec if needs_eval else None, decision, device, info)
        summary.update(outcome, seconds=time.perf_counter() - start)
        return summary
    finally:
        owned.close()
        if created:
            dist.destroy_process_group()


def _decide(rd: RunDir, spec: EvaluateSpec | None, summary: dict[str, Any], owned: ExitStack) -> str:
    """Rank 0: own the run (held in ``owned``) and say what the ranks do (TRAIN, EVALUATE, or a final status)."""
    try:
        owned.enter_context(owned_run(rd, what="trained"))
    except RunLockedError as exc:
        log.info("%s", exc)
        summary.update(status=LOCKED, failure_reason=str(exc), seconds=0.0, evaluation=None)
        return LOCKED
    finished, needs_eval = needs_work(rd, spec)
    if finished and not needs_eval:
        summary.update(status=SKIPPED, seconds=0.0, evaluation=None)
        return SKIPPED
    return EVALUATE if finished else TRAIN


def _train_and_evaluate(cfg: RunConfig, rd: RunDir, runs_dir: str | Path, spec: EvaluateSpec | None, decision: str,
                        device: Any, info: Any) -> dict[str, Any]:
    """Every rank: train (resuming), then the sharded evaluation (`spec`: None when none is due); a failure on
    any rank fails the run on all of them."""
    from robustperf.attacks.sharding import process_group_shard
    from robustperf.training.distributed import broadcast_flag

    is_main = info.is_main
    try:
        interrupted = _train(cfg, runs_dir) if decision == TRAIN else None
    except Exception as exc:  # every rank raises (the engine stops all ranks together); rank 0 records it
        reason = f"{type(exc).__name__}: {exc}"
        if is_main:
            log.error("run %s failed: %s", cfg.run_id, reason)
            _record_failure(rd, cfg.resolved(), reason, traceback.format_exc())
        return {"status": FAILED, "failure_reason": reason, "evaluation": None}
    if interrupted is not None:
        return {"status": INTERRUPTED, "failure_reason": interrupted, "evaluation": None}
    if spec is None:
        return {"status": FINISHED, "evaluation": None}
    failure = None
    evaluation = None
    try:
        evaluation = _evaluate(rd, spec, shard=process_group_shard(), local_rank=info.local_rank)
    except Exception as exc:  # the trained run stays finished; the evaluation is retried on the next call
        failure = f"evaluation {type(exc).__name__}: {exc}"
    if broadcast_flag(failure is not None, info, device):  # one rank failed: the others leave too
        failure = failure or "evaluation failed on another rank"
        if is_main:
            _record_evaluation_failure(rd, spec, failure)
        return {"status": FAILED, "failure_reason": failure, "evaluation": None}
    return {"status": FINISHED, "evaluation": evaluation}


__all__ = ["run_ranks"]
