"""The training loop: one loop for every method, resumable bit for bit, writing one run directory.

``train(cfg)`` builds the run's parts (`setup.build_parts`: data, model, method, optimiser, schedule,
EMA), restores the newest checkpoint (`state.TrainCheckpoint`), opens the run directory through a
`RunSession`, then per batch runs ``method.step -> backward -> optimiser step -> EMA`` (`step.StepRunner`),
evaluates clean and PGD accuracy on a fixed held-out subset every ``eval.every_n_epochs`` epochs, and
finishes the session with the typed final, best and cost blocks. It writes (rank 0 only)::

    runs/<run_id>/config.json      resolved config
    runs/<run_id>/metrics.jsonl    a TrainRow every log_every_n_steps, an EvalRow per eval (store/metrics_rows.py)
    runs/<run_id>/result.json      RunRecord: status, final, best, cost, provenance
    runs/<run_id>/checkpoints/     last.pt, last.prev.pt, best.pt

The schedule is a pure function of the step and the checkpoint holds every other state (RNGs and the
loader's position included), so on a CPU a run killed at any point and resumed reaches the same weights
as one that never stopped. A stop signal (`signals.STOP_SIGNALS`) finishes the step in flight (or stops the
per-epoch evaluation between two batches), writes ``last.pt`` at that step, marks the run ``interrupted``
and raises `TrainingInterrupted`; the same command resumes there (and reruns a cut-short evaluation).
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustperf.config import RunConfig
from robustperf.device import DeviceError, resolve_device
from robustperf.store import CostRecord, Metrics, RunDir, RunSession
from robustperf.store import checkpoint as ckpt
from robustperf.store.metrics_rows import EvalRow, TrainRow
from robustperf.store.owner import OwnedRun, owned_run
from robustperf.tracking.live import LiveTracking, open_tracking
from robustperf.training.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_flag,
    dist_info_from_env,
    init_distributed,
)
from robustperf.training.evaluation import EvaluationStopped, evaluate_robustness
from robustperf.training.setup import TrainingError, build_parts
from robustperf.training.signals import StopRequest, TrainingInterrupted
from robustperf.training.state import Progress, TrainCheckpoint, local_state, save_best
from robustperf.training.step import autocast

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainEvent:
    """What the loop reports to an optional callback (the CLI draws its progress bar from these).

    Attributes:
        kind: "start", "step", "eval", "end", "failed" or "interrupted".
        step: minibatches done so far (optimiser steps, except free AT's ``method.replays`` per minibatch).
        total_steps: minibatches of the whole run.
        epoch: current epoch (0-based).
        samples_seen: training images processed by all ranks.
        metrics: numbers of the event (eval metrics, or the logged train metrics).
        model: the trained module (unwrapped) on "end" and "step" events, for tests and tools.
    """

    kind: str
    step: int
    total_steps: int
    epoch: int
    samples_seen: int
    metrics: dict[str, float] = field(default_factory=dict)
    model: nn.Module | None = None


Callback = Callable[[TrainEvent], None]


def train(
    cfg: RunConfig,
    runs_dir: str | Path = "runs",
    *,
    resume: bool = True,
    callback: Callback | None = None,
    checkpoint_every_n_steps: int | None = None,
    force: bool = False,
) -> RunDir:
    """Train the run `cfg` describes in ``runs_dir/cfg.run_id`` and return its directory.

    Idempotent: a finished run with the same run id is returned untouched; an interrupted one resumes
    from its last checkpoint. A non-finite loss ends the run with status "failed" and the reason in
    ``result.json`` (nothing written before is lost); check ``run_dir.read_record().status``.

    Args:
        cfg: the run's configuration.
        runs_dir: directory holding one folder per run.
        resume: continue an interrupted run; False starts it over (checkpoints and metrics are replaced,
            a finished run is retrained).
        callback: called with a `TrainEvent` at start, every step, every evaluation and at the end.
        checkpoint_every_n_steps: also write ``last.pt`` every this many steps (mid-epoch resume
            points), in addition to every ``runtime.checkpoint_every_n_epochs`` epochs.
        force: take the run's lock even though it is reported as held (only once its holder is gone).

    Raises:
        RunLockedError: another live process is training this run.
        TrainingError: the configured device does not exist, or a checkpoint does not fit the run.
        CheckpointError: checkpoints exist but none is loadable.
    """
    info = dist_info_from_env()
    run_dir = RunDir.for_run(runs_dir, cfg.run_id)
    # one owner per run (rank 0 holds it for all ranks, from the "finished?" check to the final record):
    # a second process refuses with RunLockedError; opening it as owner removes stale temps and repairs; an
    # exception out of the opened run marks it failed, a Ctrl-C or a stop signal interrupted
    with owned_run(run_dir, force=force, is_main=info.is_main, interrupts=(TrainingInterrupted,)) as owner:
        if resume and owner.finished:
            log.info("run %s is already finished: %s", cfg.run_id, run_dir.path)
            return run_dir
        try:
            device = resolve_device(cfg.runtime.device, local_rank=info.local_rank)
        except DeviceError as exc:
            raise TrainingError(str(exc)) from None
        if device.type == "cuda":
            torch.cuda.set_device(device)
        created = init_distributed(info, device)
        saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                 torch.backends.cudnn.benchmark)
        try:
            return _Trainer(cfg, owner, info, device, callback, checkpoint_every_n_steps).run(resume)
        finally:
            # build_parts changes process-wide switches: leave them as we found them
            torch.use_deterministic_algorithms(saved[0])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
            if created:
                torch.distributed.destroy_process_group()


class _Trainer:
    """One attempt at a run: `run` is its whole life, the methods below it follow in the order they run."""

    def __init__(self, cfg: RunConfig, owner: OwnedRun, info: DistInfo, device: torch.device,
                 callback: Callback | None, checkpoint_every_n_steps: int | None) -> None:
        self.cfg, self.owner, self.info, self.device, self.callback = cfg, owner, info, device, callback
        self.run_dir = owner.run_dir
        self.ckpt_steps = checkpoint_every_n_steps or cfg.runtime.checkpoint_every_n_steps
        self.parts = build_parts(cfg, info, device)
        self.progress = Progress().to(device)
        self.session = RunSession(self.run_dir, is_main=info.is_main)  # replaced by the opened one in `run`
        self.stop = StopRequest()
        self.tracking: LiveTracking | None = None  # the config's `tracking:` sinks (rank 0), None when off

    def run(self, resume: bool) -> RunDir:
        restored = TrainCheckpoint.load_latest(self.run_dir.checkpoints, self.device) if resume else None
        if restored is not None:
            self.progress = restored.restore(self.parts, rank=self.info.rank, world_size=self.info.world_size,
                                             device=self.device)
            log.info("resumed %s at step %d (epoch %d)", self.run_dir.run_id, self.progress.step, self.progress.epoch)
        self.session = self.owner.open(
            self.cfg.resolved(), kind="train",
            resumed_at_step=self.progress.step if restored is not None else None,
            metrics_bytes=restored.metrics_bytes if restored is not None else None,
            expected_evals=self.progress.epoch // self.cfg.eval.every_n_epochs if restored is not None else None,
            provenance_extra={"device": str(self.device), "seed": self.cfg.runtime.seed,
                              "world_size": self.info.world_size, "data": self.parts.bundle.facts()},
        )
        if not resume and self.info.is_main:
            for name in (ckpt.LAST, ckpt.PREVIOUS, ckpt.BEST):
                (self.run_dir.checkpoints / name).unlink(missing_ok=True)
        barrier(self.info)
        if self.info.is_main:
            self.tracking = open_tracking(self.cfg.tracking, self.run_dir.run_id, self.cfg.resolved())
        self._emit("start")
        from robustperf.cost.energy import create_meter

        meter = create_meter(self.cfg.cost.energy_meter, watts=self.cfg.cost.watts,
                             device_index=self.device.index if self.device.type == "cuda" else None)
        self.owner.start_meter(meter, prior_seconds=restored.seconds if restored else 0.0,
                               prior_joules=restored.joules if restored else 0.0)
        self.owner.step = lambda: self.progress.step  # where the owner logs an interrupt or failure
        try:
            with self.stop:
                failure = self._loop()
        except BaseException as exc:  # the owner (`owned_run`) records it on the way out: a Ctrl-C or a stop
            # signal is resumable from the last checkpoint (interrupted), anything else failed
            interrupted = isinstance(exc, (TrainingInterrupted, KeyboardInterrupt))
            if not interrupted:
                self._emit("failed", metrics={"step": self.progress.step})
            self._close_tracking("interrupted" if interrupted else "failed")
            raise
        if failure is not None:
            self._fail(failure)
        else:
            self._finish()
        self._close_tracking("failed" if failure is not None else "finished")
        return self.run_dir

    def _log(self, row: dict[str, Any]) -> None:
        """A metrics row to metrics.jsonl and to the live trackers of the `tracking:` block."""
        self.session.log(row)
        if self.tracking is not None:
            self.tracking.log_row(row)

    def _close_tracking(self, status: str) -> None:
        if self.tracking is not None:
            record = self.run_dir.read_record() if status == "finished" else None
            if record is not None:
                cost = {k: v for k, v in record.cost.to_dict().items() if isinstance(v, (int, float))}
                self.tracking.log_row({"kind": "cost", "step": self.progress.step, **cost})
            self.tracking.close(status)
            self.tracking = None

    # ------------------------------------------------------------------------------------ the loop

    def _loop(self) -> str | None:
        """Train until ``total_steps``; returns a failure reason or None."""
        p, parts = self.progress, self.parts
        if p.batch_in_epoch and (p.batch_in_epoch >= parts.steps_per_epoch or p.step >= parts.total_steps):
            # resumed from a step checkpoint written at an epoch's (or the run's) last step, before that epoch
            # ended: its evaluation and epoch checkpoint are still to do
            failure = self._end_epoch()
            if failure is not None:
                return failure
        while p.step < parts.total_steps:
            if p.batch_in_epoch == 0:
                parts.loader.set_epoch(p.epoch)
            parts.method.set_epoch(p.epoch)
            for x, y in parts.loader:
                failure = self._train_step(x, y)
                if failure is not None:
                    return failure
                if p.batch_in_epoch >= parts.steps_per_epoch or p.step >= parts.total_steps:
                    break
                self._stop_if_signalled()
            if p.batch_in_epoch < parts.steps_per_epoch and p.step < parts.total_steps:
                raise TrainingError(
                    f"the loader stopped after {p.batch_in_epoch} of {len(parts.loader)} batches in epoch "
                    f"{p.epoch}: its __len__ and __iter__ disagree"
                )
            failure = self._end_epoch()
            if failure is not None:
                return failure
            if p.step < parts.total_steps:  # a signal during the last step lets the run finish
                self._stop_if_signalled()
        return None

    def _train_step(self, x: Tensor, y: Tensor) -> str | None:
        p = self.progress
        out = self.parts.stepper(x, y, self.cfg.optim.lr * self.parts.schedule.factor(p.step))
        p.step += 1
        p.batch_in_epoch += 1
        p.samples_seen += int(x.shape[0]) * self.info.world_size
        self._accumulate(out.loss.detach(), out.metrics)
        failure = None
        if p.step % self.cfg.runtime.log_every_n_steps == 0:
            failure = self._log_train()
        if failure is None and self.ckpt_steps and p.step % self.ckpt_steps == 0:
            failure = self._check_finite()
            if failure is None:
                self._save_last()
        self._emit("step", model=self.parts.raw)
        return failure

    def _accumulate(self, loss: Tensor, metrics: dict[str, Tensor]) -> None:
        p = self.progress
        p.epoch_loss += loss.double()
        p.epoch_batches += 1
        for key, value in {"loss": loss, **metrics}.items():
            v = value.detach().double() if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)
            p.sums[key] = p.sums.get(key, 0) + v.to(self.device)
        p.sums["n"] = p.sums.get("n", 0) + 1

    def _check_finite(self) -> str | None:
        p = self.progress
        bad = broadcast_flag(not bool(torch.isfinite(p.epoch_loss)), self.info, self.device)
        if bad:
            return (
                f"non-finite training loss at step {p.step} (epoch {p.epoch}): lower optim.lr, set "
                "optim.grad_clip, or train in runtime.precision=fp32"
            )
        return None

    def _log_train(self) -> str | None:
        p = self.progress
        failure = self._check_finite()
        if not p.sums:
            return failure
        n = float(p.sums.pop("n"))
        means = {key: float(value) / n for key, value in p.sums.items()}
        p.sums = {}
        row = TrainRow(values=means, step=p.step, epoch=p.epoch, samples_seen=p.samples_seen,
                       lr=self.parts.optimizer.param_groups[0]["lr"], seconds=self.session.seconds())
        self._log(row.to_dict())
        return failure

    def _stop_if_signalled(self) -> None:
        """Checkpoint at this step and raise `TrainingInterrupted` when a stop signal arrived.

        Single process: checked after every step. Distributed: every ``log_every_n_steps`` steps, with
        the ranks agreeing through one all-reduce (every rank must stop at the same step).
        """
        step, signum = self.progress.step, self.stop.signum
        if self.info.enabled:
            if step % self.cfg.runtime.log_every_n_steps:
                return
            if not broadcast_flag(signum is not None, self.info, self.device):
                return
        elif signum is None:
            return
        self._interrupt(signum)

    def _interrupt(self, signum: int | None) -> None:
        """Write ``last.pt`` at the current state, mark the run interrupted, raise `TrainingInterrupted`."""
        step = self.progress.step
        signum = signum or int(signal.SIGTERM)  # a rank told to stop by its peers
        self._save_last()
        self.session.stop_meter()
        name = signal.Signals(signum).name
        self.session.interrupt(f"{name} at step {step}; resumable from the checkpoint at this step", step=step,
                               signal_name=name)
        self._emit("interrupted", metrics={"step": step})
        raise TrainingInterrupted(signum, step, self.run_dir.path)

    def _end_epoch(self) -> str | None:
        p = self.progress
        failure = self._log_train() if p.sums else self._check_finite()
        if failure is not None:
            return failure
        self._sync_buffers()
        train_loss = float(p.epoch_loss) / max(1, p.epoch_batches)
        last = p.step >= self.parts.total_steps
        # the evaluation runs before the epoch is closed: a stop signal during it checkpoints this state
        # (the epoch's last step, as a step checkpoint would), so the resumed run evaluates this epoch again
        if (last or (p.epoch + 1) % self.cfg.eval.every_n_epochs == 0) and not self._evaluate(p.epoch, train_loss):
            self._interrupt(self.stop.signum)
        p.epoch += 1
        p.batch_in_epoch = 0
        p.epoch_loss.zero_()
        p.epoch_batches = 0
        if last or p.epoch % self.cfg.runtime.checkpoint_every_n_epochs == 0:
            self._save_last()
        return None

    def _sync_buffers(self) -> None:
        """Rank 0's BatchNorm running statistics on every rank (DDP syncs them before each forward only,
        so after the last step of an epoch each rank would hold its own)."""
        if self.info.enabled:
            for buffer in self.parts.raw.buffers():
                torch.distributed.broadcast(buffer, src=0)

    # ------------------------------------------------------------------------------ evaluation

    def _evaluate(self, epoch: int, train_loss: float) -> bool:
        """Evaluate on rank 0 (the others wait); False when a stop signal cut the evaluation short (nothing
        of it is logged then, and every rank learns so through one all-reduce)."""
        parts = self.parts
        metrics: dict[str, Any] = {}
        stopped = False
        if self.info.is_main:
            t0 = time.perf_counter()
            try:
                with autocast(self.device, self.cfg.runtime.precision):
                    metrics = evaluate_robustness(parts.eval_module, parts.x_eval, parts.y_eval, parts.eval_settings,
                                                  should_stop=lambda: self.stop.signum is not None)
            except EvaluationStopped:
                log.warning("stop signal during the evaluation of epoch %d: stopping; it is rerun on resume", epoch)
                stopped = True
            if not stopped:
                metrics = self._record_eval(metrics, epoch, train_loss, time.perf_counter() - t0)
        if broadcast_flag(stopped, self.info, self.device):  # rank 0's answer (also the barrier of the others)
            return False
        self._emit("eval", metrics=metrics)
        return True

    def _record_eval(self, evaluation: dict[str, Any], epoch: int, train_loss: float,
                     seconds: float) -> dict[str, Any]:
        """Log the evaluation's row, update ``last_eval``/``best`` and the record; returns the row's metrics."""
        p, parts = self.progress, self.parts
        row = EvalRow.from_dict({**evaluation, "epoch": epoch, "step": p.step, "samples_seen": p.samples_seen,
                                 "train_loss": train_loss, "eval_seconds": seconds, "n_params": parts.n_params})
        if row.fgsm_acc is not None:
            row = _watch_overfitting(p.last_eval, row)
        self._log(row.to_dict())
        metrics = row.metrics()
        p.last_eval = metrics
        key = self.cfg.eval.select_best_on
        if not p.best or _is_better(metrics[key], p.best[key], key):
            p.best = dict(metrics)
            save_best(parts, parts.eval_module, p.best, run_dir=self.run_dir.checkpoints, run_id=self.run_dir.run_id)
        self.session.update(final=_summary(metrics), best=_summary(p.best))
        return metrics

    # ---------------------------------------------------------------------------- checkpoints

    def _save_last(self) -> None:
        per_rank = [local_state(self.parts)]
        if self.info.enabled:
            gathered: list[Any] = [None] * self.info.world_size
            torch.distributed.all_gather_object(gathered, per_rank[0])
            per_rank = gathered
        if self.info.is_main:
            seconds, joules = self.session.measured()
            metrics = self.run_dir.metrics_path
            TrainCheckpoint.capture(self.parts, self.progress, per_rank, run_id=self.run_dir.run_id,
                                    world_size=self.info.world_size, seconds=seconds, joules=joules,
                                    metrics_bytes=metrics.stat().st_size if metrics.exists() else 0,
                                    ).save(self.run_dir.checkpoints)
        barrier(self.info)

    # ------------------------------------------------------------------------------ finishing

    def _cost(self) -> CostRecord:
        from robustperf.cost.accounting import run_cost, train_flops_per_sample
        from robustperf.training.methods import flop_iteration

        parts = self.parts
        reading = self.session.stop_meter()
        joules = all_reduce_sum(reading.joules, self.info, self.device) if reading.joules is not None else None
        flops_per_sample = forward = float("nan")
        if self.cfg.cost.count_flops:
            try:
                fb = train_flops_per_sample(parts.raw, self.cfg, flop_iteration(self.cfg.method),
                                            input_shape=tuple(parts.bundle.input_shape))
                flops_per_sample, forward = fb.per_sample, fb.forward_flops
            except Exception as exc:  # noqa: BLE001 - the trained run is kept; its FLOPs are stored as null
                log.warning("counting the FLOPs of %s's step failed (%s: %s): FLOPs are stored as null",
                            self.cfg.method.name, type(exc).__name__, exc)
        # per evaluated image: clean forward + PGD-k (2F per step, input gradients only) + adversarial forward
        # (+ FGSM's step and scoring forward for single-step methods)
        n_evals = math.ceil(parts.n_epochs / self.cfg.eval.every_n_epochs)
        per_image = 2 + 2 * parts.eval_settings.n_steps + (3 if parts.eval_settings.fgsm else 0)
        eval_flops = forward * parts.x_eval.shape[0] * per_image * n_evals
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        cost = run_cost(
            self.cfg.cost, seconds=reading.seconds, samples_seen=self.progress.samples_seen,
            flops_per_sample=flops_per_sample, joules=joules, energy_source=reading.source,
            n_gpus=self.info.world_size, peak_memory_bytes=peak, eval_flops=eval_flops)
        # what one prediction costs (an ensemble's k member forwards): inference beside training
        cost["inference_flops_per_image"] = forward if math.isfinite(forward) else None
        return CostRecord.from_dict(cost)

    def _finish(self) -> None:
        p = self.progress
        self.session.finish(final=_summary(p.last_eval), best=_summary(p.best), cost=self._cost())
        barrier(self.info)
        self._emit("end", metrics=_summary(p.last_eval), model=self.parts.raw)

    def _fail(self, reason: str) -> None:
        self.session.fail(reason, step=self.progress.step)
        self._emit("failed", metrics={"step": self.progress.step})

    def _emit(self, kind: str, metrics: dict[str, Any] | None = None, model: nn.Module | None = None) -> None:
        if self.callback is not None:
            p = self.progress
            self.callback(TrainEvent(kind, p.step, self.parts.total_steps, p.epoch, p.samples_seen,
                                     dict(metrics or {}), model))


def _watch_overfitting(previous: dict[str, Any], row: EvalRow) -> EvalRow:
    """`row` with its catastrophic-overfitting flag (kept once seen, with the epoch it was first seen)."""
    from robustperf.training.evaluation import catastrophic_overfitting

    if previous.get("catastrophic_overfitting"):
        return replace(row, catastrophic_overfitting=True, co_epoch=previous.get("co_epoch"))
    if catastrophic_overfitting(previous, row.metrics()):
        log.warning("catastrophic overfitting at epoch %d: PGD accuracy %.3f -> %.3f while FGSM accuracy "
                    "%.3f -> %.3f", row.epoch, previous["robust_acc"], row.robust_acc, previous["fgsm_acc"],
                    row.fgsm_acc)
        return replace(row, catastrophic_overfitting=True, co_epoch=row.epoch)
    return replace(row, catastrophic_overfitting=False)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The ``final``/``best`` block of an evaluation's metrics: the keys `Metrics` declares."""
    return {k: metrics[k] for k in Metrics.known() if k in metrics}


def _is_better(new: float, old: float, key: str) -> bool:
    """Strictly better (ties keep the earlier epoch)."""
    return new < old if key == "adv_loss" else new > old


__all__ = ["TrainEvent", "TrainingError", "TrainingInterrupted", "train"]
