"""The steps of one study run that `run_one` (one process) and `run_ranks` (one rank of several) share:
the outcome names, whether a run still has work, training, the study's evaluation, recording a failure.

Both `run.py` and `ranks.py` import this module, and neither imports the other at load time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
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
    """Evaluate the run's checkpoint on a fixed held-out subset; store the summary in result.json.

    With a `shard` (`robustperf.attacks.sharding.Shard`) the run's ranks split the attack batches; each gets
    the whole result and rank 0 alone stores it.
    """
    from robustperf.data import build_data, eval_tensors
    from robustperf.device import resolve_device
    from robustperf.evaluation import evaluate
    from robustperf.models import load_run_model

    device = resolve_device("auto", local_rank=local_rank)
    # "final" is the last checkpoint ("last" in the training engine's naming)
    model, cfg = load_run_model(rd.path, which="last" if spec.which == "final" else spec.which, device=device)
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    x, y = eval_tensors(bundle.test, spec.n_examples, seed=spec.seed)
    out_dir = rd.evaluations_dir / spec.key
    start = time.perf_counter()
    attack = spec.attacks[0] if len(spec.attacks) == 1 else list(spec.attacks)
    threat = cfg.eval_threat  # the run's evaluation threat model, as its per-epoch evaluation uses
    result = evaluate(model, x, y, attack=attack, eps=threat.eps, norm=threat.norm,
                      batch_size=spec.batch_size, device=device, seed=spec.seed, out_dir=out_dir, shard=shard)
    summary = result.summary() if hasattr(result, "summary") else _eval_summary(result)
    summary.update(checkpoint=spec.which, attacks=list(spec.attacks), n_examples=int(len(y)),
                   seconds=time.perf_counter() - start, n_processes=shard.world_size if shard is not None else 1)
    if shard is None or shard.rank == 0:
        rd.update_record(evaluations={spec.key: summary})
    return summary


_SCALARS = (int, float, str, bool, type(None))


def _eval_summary(result: Any) -> dict[str, Any]:
    """Scalars and small dicts of an EvalResult (per-point arrays stay in the evaluation directory)."""
    if hasattr(result, "to_dict"):
        data = result.to_dict()
    elif dataclasses.is_dataclass(result):
        data = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    else:
        data = dict(vars(result))
    out: dict[str, Any] = {}
    for key, value in data.items():
        scalar_dict = isinstance(value, dict) and all(isinstance(v, _SCALARS) for v in value.values())
        if isinstance(value, _SCALARS) or scalar_dict:
            out[key] = value
        elif isinstance(value, (list, tuple)) and len(value) <= 64 and all(isinstance(v, (str, int, float)) for v in value):
            out[key] = list(value)
    return out


def _record_failure(rd: RunDir, cfg: RunConfig, reason: str, trace: str) -> None:
    try:
        RunSession.record_failure(rd, cfg.resolved(), reason, trace)
    except OSError as exc:  # the disk itself failed: nothing more we can record
        log.error("could not record failure of %s: %s", cfg.run_id, exc)
