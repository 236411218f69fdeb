"""`run_one`: train (or resume, or skip) one run of a study, then evaluate it; never raises on a run's failure.

`run_entry` is the one way a study entry runs, whatever its engine: the run's owner (`owned_run`) is taken
or the entry is ``locked``; a finished run with nothing left to evaluate is ``skipped``; the engine's work
runs (``finished``, ``interrupted`` by a stop signal, or ``failed``: recorded, never raised); then the
study's evaluation. `run_one` hands it the image training engine; `robustperf.llm.study.run_llm_one` the LLM
pipeline's commands (the LLM layer sits above this one); both return the same summary (`SUMMARY_KEYS`).

This module imports no torch at top level: executors pickle `run_one` by reference and the worker
process sets ``CUDA_VISIBLE_DEVICES`` and thread counts before torch is first imported.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from robustperf.config import RunConfig, config_from_dict
from robustperf.store import RunDir
from robustperf.store.lock import RunLockedError
from robustperf.store.owner import owned_run
from robustperf.sweep.run_steps import (  # noqa: F401  (re-exported: the names callers know run_one by)
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
    world_size_from_env,
)
from robustperf.sweep.study import EvaluateSpec

log = logging.getLogger(__name__)


def as_run_config(config: dict[str, Any] | RunConfig) -> RunConfig:
    """A RunConfig from a resolved dict (what executors ship) or a RunConfig."""
    return config if isinstance(config, RunConfig) else config_from_dict(config)


# what every study entry's summary holds, whatever its engine
SUMMARY_KEYS = ("run_id", "run_dir", "status", "failure_reason", "seconds", "evaluation")


def run_one(
    config: dict[str, Any] | RunConfig,
    runs_dir: str | Path,
    *,
    evaluate: dict[str, Any] | EvaluateSpec | None = None,
) -> dict[str, Any]:
    """Run one study entry idempotently and return a JSON-ready summary (`run_entry`).

    A finished run (with its study evaluation done) is skipped; an interrupted one resumes (the
    training engine resumes from its last checkpoint); an exception is recorded in the run's
    result.json as ``status: failed`` with its reason and returned, so one bad run never stops a study.
    A failed evaluation leaves the trained run finished, records the reason under its evaluation key
    and is retried by the next call.

    Args:
        config: the run's RunConfig or its resolved dict.
        runs_dir: directory holding one folder per run.
        evaluate: post-training evaluation (`EvaluateSpec` or its dict); None or no attacks: none.

    Returns:
        ``{"run_id", "run_dir", "status": finished|skipped|failed|interrupted|locked, "failure_reason", "seconds",
        "evaluation"}``; ``locked``: another live process holds the run (`RunLock`), nothing was done.
    """
    cfg = as_run_config(config)
    spec = EvaluateSpec.model_validate(evaluate) if isinstance(evaluate, dict) else evaluate
    rd = RunDir.for_run(runs_dir, cfg.run_id)
    if world_size_from_env() > 1:  # one rank of a multi-process run (srun, torchrun, submitit tasks)
        from robustperf.sweep.ranks import run_ranks

        summary: dict[str, Any] = {"run_id": cfg.run_id, "run_dir": str(rd.path), "failure_reason": None}
        return run_ranks(cfg, rd, runs_dir, spec, summary)
    return run_entry(rd, cfg.resolved(), lambda: _train(cfg, runs_dir), evaluate=spec)


def run_entry(rd: RunDir, config: Mapping[str, Any], work: Callable[[], str | None], *,
              evaluate: EvaluateSpec | None = None) -> dict[str, Any]:
    """Run one study entry as its owner; never raises for the run's own failure, which its record holds.

    Args:
        rd: the run's directory.
        config: its resolved config (written with a failure that comes before the engine opened the run).
        work: the engine's attempt at the run (it resumes an interrupted one): returns the reason when a stop
            signal interrupted it (checkpointed, resumable), else None; raises when the run failed.
        evaluate: the study's evaluation of the finished run (None or no attacks: none).

    Returns:
        the summary, keys `SUMMARY_KEYS`; ``status``: finished | skipped | failed | interrupted | locked
        (another live process holds the run: nothing was done, come back later).
    """
    summary: dict[str, Any] = {"run_id": rd.run_id, "run_dir": str(rd.path), "failure_reason": None}
    try:
        with owned_run(rd, what="trained"):  # one owner per run: held for the work, evaluation and final record
            return _run_owned(rd, config, work, evaluate, summary)
    except RunLockedError as exc:  # another process has it (`_run_owned` answers for the work's own runs)
        return _locked(summary, exc)


def _locked(summary: dict[str, Any], exc: RunLockedError) -> dict[str, Any]:
    """The summary of an entry whose run another live process holds: the study comes back to it later."""
    log.info("%s", exc)
    summary.update(status=LOCKED, failure_reason=str(exc), seconds=0.0, evaluation=None)
    return summary


def _run_owned(rd: RunDir, config: Mapping[str, Any], work: Callable[[], str | None], spec: EvaluateSpec | None,
               summary: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    finished, needs_eval = needs_work(rd, spec)
    if finished and not needs_eval:
        summary.update(status=SKIPPED, seconds=0.0, evaluation=None)
        return summary
    try:
        interrupted = None if finished else work()
    except RunLockedError as exc:  # a run the work needs is held by another process (an LLM run's fine-tune)
        return _locked(summary, exc)
    except Exception as exc:  # a run's failure is data, not a crash of the study
        reason = f"{type(exc).__name__}: {exc}"
        log.error("run %s failed: %s", rd.run_id, reason)
        _record_failure(rd, config, reason, traceback.format_exc())
        summary.update(status=FAILED, failure_reason=reason, evaluation=None, seconds=time.perf_counter() - start)
        return summary
    if interrupted is not None:  # a stop signal: checkpointed and resumable, not failed
        log.warning("run %s interrupted: %s", rd.run_id, interrupted)
        summary.update(status=INTERRUPTED, failure_reason=interrupted, evaluation=None,
                       seconds=time.perf_counter() - start)
        return summary
    try:
        evaluation = _evaluate(rd, spec) if needs_eval and spec is not None else None
        summary.update(status=FINISHED, evaluation=evaluation)
    except Exception as exc:  # the trained run stays finished; the evaluation is retried on the next call
        assert spec is not None, "only _evaluate can raise here, and it runs only with a spec"
        reason = f"evaluation {type(exc).__name__}: {exc}"
        _record_evaluation_failure(rd, spec, reason)
        summary.update(status=FAILED, failure_reason=reason, evaluation=None)
    summary["seconds"] = time.perf_counter() - start
    return summary
